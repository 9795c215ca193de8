from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SignedVerifyRequest(_message.Message):
    __slots__ = ("request", "signature")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    request: bytes
    signature: bytes
    def __init__(self, request: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("item", "fields", "predicate", "tag", "sealed_subject", "consent_id", "agreement_id", "purpose", "case_id", "nonce", "time_ms", "requester", "requester_key", "provider", "provider_key", "reply_key")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SEALED_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_KEY_FIELD_NUMBER: _ClassVar[int]
    REPLY_KEY_FIELD_NUMBER: _ClassVar[int]
    item: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    predicate: str
    tag: bytes
    sealed_subject: bytes
    consent_id: str
    agreement_id: str
    purpose: str
    case_id: str
    nonce: bytes
    time_ms: int
    requester: str
    requester_key: bytes
    provider: str
    provider_key: bytes
    reply_key: bytes
    def __init__(self, item: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., predicate: _Optional[str] = ..., tag: _Optional[bytes] = ..., sealed_subject: _Optional[bytes] = ..., consent_id: _Optional[str] = ..., agreement_id: _Optional[str] = ..., purpose: _Optional[str] = ..., case_id: _Optional[str] = ..., nonce: _Optional[bytes] = ..., time_ms: _Optional[int] = ..., requester: _Optional[str] = ..., requester_key: _Optional[bytes] = ..., provider: _Optional[str] = ..., provider_key: _Optional[bytes] = ..., reply_key: _Optional[bytes] = ...) -> None: ...

class SealedSubject(_message.Message):
    __slots__ = ("id_number", "oprf_output")
    ID_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OPRF_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    id_number: str
    oprf_output: bytes
    def __init__(self, id_number: _Optional[str] = ..., oprf_output: _Optional[bytes] = ...) -> None: ...

class VerifyReply(_message.Message):
    __slots__ = ("sealed_answer", "answer_commitment", "request_digest", "attestation", "provider_key", "log_tx_id", "log_height", "redelivered")
    SEALED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    ANSWER_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_KEY_FIELD_NUMBER: _ClassVar[int]
    LOG_TX_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_FIELD_NUMBER: _ClassVar[int]
    sealed_answer: bytes
    answer_commitment: bytes
    request_digest: bytes
    attestation: bytes
    provider_key: bytes
    log_tx_id: bytes
    log_height: int
    redelivered: bool
    def __init__(self, sealed_answer: _Optional[bytes] = ..., answer_commitment: _Optional[bytes] = ..., request_digest: _Optional[bytes] = ..., attestation: _Optional[bytes] = ..., provider_key: _Optional[bytes] = ..., log_tx_id: _Optional[bytes] = ..., log_height: _Optional[int] = ..., redelivered: _Optional[bool] = ...) -> None: ...
