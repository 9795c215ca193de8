from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EvaluateRequest(_message.Message):
    __slots__ = ("blinded",)
    BLINDED_FIELD_NUMBER: _ClassVar[int]
    blinded: bytes
    def __init__(self, blinded: _Optional[bytes] = ...) -> None: ...

class EvaluateReply(_message.Message):
    __slots__ = ("evaluated",)
    EVALUATED_FIELD_NUMBER: _ClassVar[int]
    evaluated: bytes
    def __init__(self, evaluated: _Optional[bytes] = ...) -> None: ...
