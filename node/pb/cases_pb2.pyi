from node.pb import client_pb2 as _client_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OpenCaseRequest(_message.Message):
    __slots__ = ("open_case", "id_number", "oprf_output", "consent_ids", "agreement_ids", "purpose")
    class ConsentIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AgreementIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OPEN_CASE_FIELD_NUMBER: _ClassVar[int]
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OPRF_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_IDS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    open_case: _client_pb2.Transaction
    id_number: str
    oprf_output: bytes
    consent_ids: _containers.ScalarMap[str, str]
    agreement_ids: _containers.ScalarMap[str, str]
    purpose: str
    def __init__(self, open_case: _Optional[_Union[_client_pb2.Transaction, _Mapping]] = ..., id_number: _Optional[str] = ..., oprf_output: _Optional[bytes] = ..., consent_ids: _Optional[_Mapping[str, str]] = ..., agreement_ids: _Optional[_Mapping[str, str]] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetCaseRequest(_message.Message):
    __slots__ = ("case_id", "time_ms", "nonce", "key", "signature")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    time_ms: int
    nonce: bytes
    key: bytes
    signature: bytes
    def __init__(self, case_id: _Optional[str] = ..., time_ms: _Optional[int] = ..., nonce: _Optional[bytes] = ..., key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class CaseReply(_message.Message):
    __slots__ = ("case_json", "height", "openings_json")
    CASE_JSON_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    OPENINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    case_json: str
    height: int
    openings_json: str
    def __init__(self, case_json: _Optional[str] = ..., height: _Optional[int] = ..., openings_json: _Optional[str] = ...) -> None: ...
