from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SignedRecord(_message.Message):
    __slots__ = ("version", "chain_id", "type", "id", "time_ms", "signer", "body", "signature")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    version: int
    chain_id: str
    type: str
    id: bytes
    time_ms: int
    signer: bytes
    body: bytes
    signature: bytes
    def __init__(self, version: _Optional[int] = ..., chain_id: _Optional[str] = ..., type: _Optional[str] = ..., id: _Optional[bytes] = ..., time_ms: _Optional[int] = ..., signer: _Optional[bytes] = ..., body: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
