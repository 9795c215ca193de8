from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRequest(_message.Message):
    __slots__ = ("tag", "time_ms", "nonce", "key", "signature", "after", "limit")
    TAG_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    tag: str
    time_ms: int
    nonce: bytes
    key: bytes
    signature: bytes
    after: str
    limit: int
    def __init__(self, tag: _Optional[str] = ..., time_ms: _Optional[int] = ..., nonce: _Optional[bytes] = ..., key: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("entry_json", "proof_json")
    ENTRY_JSON_FIELD_NUMBER: _ClassVar[int]
    PROOF_JSON_FIELD_NUMBER: _ClassVar[int]
    entry_json: str
    proof_json: str
    def __init__(self, entry_json: _Optional[str] = ..., proof_json: _Optional[str] = ...) -> None: ...

class AuditReply(_message.Message):
    __slots__ = ("chain_id", "height", "entries", "more", "next")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    more: bool
    next: str
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., more: _Optional[bool] = ..., next: _Optional[str] = ...) -> None: ...
