from node.pb import consensus_pb2 as _consensus_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Transaction(_message.Message):
    __slots__ = ("chain_id", "sender", "nonce", "contract", "method", "payload", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    sender: bytes
    nonce: int
    contract: str
    method: str
    payload: bytes
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., sender: _Optional[bytes] = ..., nonce: _Optional[int] = ..., contract: _Optional[str] = ..., method: _Optional[str] = ..., payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("tx_id", "height", "index", "status", "message", "output")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Receipt.Status]
        OK: _ClassVar[Receipt.Status]
        FAILED: _ClassVar[Receipt.Status]
        DUPLICATE: _ClassVar[Receipt.Status]
    STATUS_UNSPECIFIED: Receipt.Status
    OK: Receipt.Status
    FAILED: Receipt.Status
    DUPLICATE: Receipt.Status
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    tx_id: bytes
    height: int
    index: int
    status: Receipt.Status
    message: str
    output: bytes
    def __init__(self, tx_id: _Optional[bytes] = ..., height: _Optional[int] = ..., index: _Optional[int] = ..., status: _Optional[_Union[Receipt.Status, str]] = ..., message: _Optional[str] = ..., output: _Optional[bytes] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("tx", "wait_commit", "timeout_ms")
    TX_FIELD_NUMBER: _ClassVar[int]
    WAIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    tx: Transaction
    wait_commit: bool
    timeout_ms: int
    def __init__(self, tx: _Optional[_Union[Transaction, _Mapping]] = ..., wait_commit: _Optional[bool] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("tx_id", "receipt", "committed")
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    tx_id: bytes
    receipt: Receipt
    committed: bool
    def __init__(self, tx_id: _Optional[bytes] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., committed: _Optional[bool] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("txs", "wait_commit", "timeout_ms")
    TXS_FIELD_NUMBER: _ClassVar[int]
    WAIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    txs: _containers.RepeatedCompositeFieldContainer[Transaction]
    wait_commit: bool
    timeout_ms: int
    def __init__(self, txs: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., wait_commit: _Optional[bool] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("tx_id", "code", "error", "receipt", "committed")
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    tx_id: bytes
    code: int
    error: str
    receipt: Receipt
    committed: bool
    def __init__(self, tx_id: _Optional[bytes] = ..., code: _Optional[int] = ..., error: _Optional[str] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., committed: _Optional[bool] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("chain_id", "height", "hash")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    hash: bytes
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class BlockResponse(_message.Message):
    __slots__ = ("header", "block", "receipts", "checkpoint")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    header: _consensus_pb2.BlockHeader
    block: _consensus_pb2.CommittedBlock
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    checkpoint: _consensus_pb2.StableCheckpoint
    def __init__(self, header: _Optional[_Union[_consensus_pb2.BlockHeader, _Mapping]] = ..., block: _Optional[_Union[_consensus_pb2.CommittedBlock, _Mapping]] = ..., receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., checkpoint: _Optional[_Union[_consensus_pb2.StableCheckpoint, _Mapping]] = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ("chain_id", "tx_id")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    TX_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    tx_id: bytes
    def __init__(self, chain_id: _Optional[str] = ..., tx_id: _Optional[bytes] = ...) -> None: ...

class TransactionResponse(_message.Message):
    __slots__ = ("tx", "receipt")
    TX_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    tx: Transaction
    receipt: Receipt
    def __init__(self, tx: _Optional[_Union[Transaction, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("chain_id", "contract", "method", "args")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    contract: str
    method: str
    args: bytes
    def __init__(self, chain_id: _Optional[str] = ..., contract: _Optional[str] = ..., method: _Optional[str] = ..., args: _Optional[bytes] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("result", "height")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    result: bytes
    height: int
    def __init__(self, result: _Optional[bytes] = ..., height: _Optional[int] = ...) -> None: ...

class QueryStateRequest(_message.Message):
    __slots__ = ("chain_id", "contract", "key")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    contract: str
    key: bytes
    def __init__(self, chain_id: _Optional[str] = ..., contract: _Optional[str] = ..., key: _Optional[bytes] = ...) -> None: ...

class QueryStateResponse(_message.Message):
    __slots__ = ("found", "value", "height")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    height: int
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., height: _Optional[int] = ...) -> None: ...

class StreamBlocksRequest(_message.Message):
    __slots__ = ("chain_id", "from_height")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    from_height: int
    def __init__(self, chain_id: _Optional[str] = ..., from_height: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChainStatus(_message.Message):
    __slots__ = ("chain_id", "height", "view", "primary", "view_changing", "peers_connected", "mempool", "head_hash", "replica", "dropped")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    VIEW_CHANGING_FIELD_NUMBER: _ClassVar[int]
    PEERS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MEMPOOL_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    view: int
    primary: int
    view_changing: bool
    peers_connected: _containers.RepeatedScalarFieldContainer[str]
    mempool: int
    head_hash: bytes
    replica: int
    dropped: _containers.ScalarMap[str, int]
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., view: _Optional[int] = ..., primary: _Optional[int] = ..., view_changing: _Optional[bool] = ..., peers_connected: _Optional[_Iterable[str]] = ..., mempool: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., replica: _Optional[int] = ..., dropped: _Optional[_Mapping[str, int]] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("department", "chains", "dropped")
    class DroppedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    department: str
    chains: _containers.RepeatedCompositeFieldContainer[ChainStatus]
    dropped: _containers.ScalarMap[str, int]
    def __init__(self, department: _Optional[str] = ..., chains: _Optional[_Iterable[_Union[ChainStatus, _Mapping]]] = ..., dropped: _Optional[_Mapping[str, int]] = ...) -> None: ...
