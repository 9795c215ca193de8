from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Request(_message.Message):
    __slots__ = ("id", "body")
    ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    body: bytes
    def __init__(self, id: _Optional[bytes] = ..., body: _Optional[bytes] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("chain_id", "seq", "proposer", "timestamp_ms", "requests", "metadata")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    proposer: int
    timestamp_ms: int
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    metadata: bytes
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., proposer: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ..., metadata: _Optional[bytes] = ...) -> None: ...

class ReadHeights(_message.Message):
    __slots__ = ("entries",)
    class Entry(_message.Message):
        __slots__ = ("chain_id", "height")
        CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
        HEIGHT_FIELD_NUMBER: _ClassVar[int]
        chain_id: str
        height: int
        def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ReadHeights.Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ReadHeights.Entry, _Mapping]]] = ...) -> None: ...

class PrePrepare(_message.Message):
    __slots__ = ("chain_id", "view", "seq", "digest", "proposal", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    seq: int
    digest: bytes
    proposal: Proposal
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., proposal: _Optional[_Union[Proposal, _Mapping]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Prepare(_message.Message):
    __slots__ = ("chain_id", "view", "seq", "digest", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    seq: int
    digest: bytes
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Commit(_message.Message):
    __slots__ = ("chain_id", "view", "seq", "digest", "replica", "signature", "link")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    seq: int
    digest: bytes
    replica: int
    signature: bytes
    link: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ..., link: _Optional[bytes] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("chain_id", "seq", "digest", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    digest: bytes
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PreparedCertificate(_message.Message):
    __slots__ = ("pre_prepare", "prepares")
    PRE_PREPARE_FIELD_NUMBER: _ClassVar[int]
    PREPARES_FIELD_NUMBER: _ClassVar[int]
    pre_prepare: PrePrepare
    prepares: _containers.RepeatedCompositeFieldContainer[Prepare]
    def __init__(self, pre_prepare: _Optional[_Union[PrePrepare, _Mapping]] = ..., prepares: _Optional[_Iterable[_Union[Prepare, _Mapping]]] = ...) -> None: ...

class CommitCertificate(_message.Message):
    __slots__ = ("chain_id", "view", "seq", "digest", "commits", "link")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    COMMITS_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    seq: int
    digest: bytes
    commits: _containers.RepeatedCompositeFieldContainer[Commit]
    link: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., commits: _Optional[_Iterable[_Union[Commit, _Mapping]]] = ..., link: _Optional[bytes] = ...) -> None: ...

class CommittedBlock(_message.Message):
    __slots__ = ("proposal", "certificate")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    certificate: CommitCertificate
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., certificate: _Optional[_Union[CommitCertificate, _Mapping]] = ...) -> None: ...

class ViewChange(_message.Message):
    __slots__ = ("chain_id", "view", "checkpoint", "prepared", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    checkpoint: StableCheckpoint
    prepared: _containers.RepeatedCompositeFieldContainer[PreparedCertificate]
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., checkpoint: _Optional[_Union[StableCheckpoint, _Mapping]] = ..., prepared: _Optional[_Iterable[_Union[PreparedCertificate, _Mapping]]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class NewView(_message.Message):
    __slots__ = ("chain_id", "view", "view_changes", "pre_prepares", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_CHANGES_FIELD_NUMBER: _ClassVar[int]
    PRE_PREPARES_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    view_changes: _containers.RepeatedCompositeFieldContainer[ViewChange]
    pre_prepares: _containers.RepeatedCompositeFieldContainer[PrePrepare]
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., view_changes: _Optional[_Iterable[_Union[ViewChange, _Mapping]]] = ..., pre_prepares: _Optional[_Iterable[_Union[PrePrepare, _Mapping]]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class RequestBatch(_message.Message):
    __slots__ = ("chain_id", "requests", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("chain_id", "view", "executed_seq", "replica", "signature", "stable_seq")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    EXECUTED_SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STABLE_SEQ_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    view: int
    executed_seq: int
    replica: int
    signature: bytes
    stable_seq: int
    def __init__(self, chain_id: _Optional[str] = ..., view: _Optional[int] = ..., executed_seq: _Optional[int] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ..., stable_seq: _Optional[int] = ...) -> None: ...

class FetchBlocks(_message.Message):
    __slots__ = ("chain_id", "from_seq", "to_seq", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    from_seq: int
    to_seq: int
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class BlocksReply(_message.Message):
    __slots__ = ("chain_id", "blocks", "replica", "signature", "checkpoints")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    blocks: _containers.RepeatedCompositeFieldContainer[CommittedBlock]
    replica: int
    signature: bytes
    checkpoints: _containers.RepeatedCompositeFieldContainer[StableCheckpoint]
    def __init__(self, chain_id: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[CommittedBlock, _Mapping]]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ..., checkpoints: _Optional[_Iterable[_Union[StableCheckpoint, _Mapping]]] = ...) -> None: ...

class FetchProposal(_message.Message):
    __slots__ = ("chain_id", "seq", "digest", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    digest: bytes
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ProposalReply(_message.Message):
    __slots__ = ("chain_id", "proposal", "replica", "signature")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    proposal: Proposal
    replica: int
    signature: bytes
    def __init__(self, chain_id: _Optional[str] = ..., proposal: _Optional[_Union[Proposal, _Mapping]] = ..., replica: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ConsensusMessage(_message.Message):
    __slots__ = ("pre_prepare", "prepare", "commit", "checkpoint", "view_change", "new_view", "request_batch", "status", "fetch_blocks", "blocks_reply", "fetch_proposal", "proposal_reply")
    PRE_PREPARE_FIELD_NUMBER: _ClassVar[int]
    PREPARE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    VIEW_CHANGE_FIELD_NUMBER: _ClassVar[int]
    NEW_VIEW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BATCH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FETCH_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_REPLY_FIELD_NUMBER: _ClassVar[int]
    FETCH_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_REPLY_FIELD_NUMBER: _ClassVar[int]
    pre_prepare: PrePrepare
    prepare: Prepare
    commit: Commit
    checkpoint: Checkpoint
    view_change: ViewChange
    new_view: NewView
    request_batch: RequestBatch
    status: Status
    fetch_blocks: FetchBlocks
    blocks_reply: BlocksReply
    fetch_proposal: FetchProposal
    proposal_reply: ProposalReply
    def __init__(self, pre_prepare: _Optional[_Union[PrePrepare, _Mapping]] = ..., prepare: _Optional[_Union[Prepare, _Mapping]] = ..., commit: _Optional[_Union[Commit, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., view_change: _Optional[_Union[ViewChange, _Mapping]] = ..., new_view: _Optional[_Union[NewView, _Mapping]] = ..., request_batch: _Optional[_Union[RequestBatch, _Mapping]] = ..., status: _Optional[_Union[Status, _Mapping]] = ..., fetch_blocks: _Optional[_Union[FetchBlocks, _Mapping]] = ..., blocks_reply: _Optional[_Union[BlocksReply, _Mapping]] = ..., fetch_proposal: _Optional[_Union[FetchProposal, _Mapping]] = ..., proposal_reply: _Optional[_Union[ProposalReply, _Mapping]] = ...) -> None: ...

class ViewRecord(_message.Message):
    __slots__ = ("view", "changing", "floor")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    CHANGING_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    view: int
    changing: bool
    floor: int
    def __init__(self, view: _Optional[int] = ..., changing: _Optional[bool] = ..., floor: _Optional[int] = ...) -> None: ...

class StableCheckpoint(_message.Message):
    __slots__ = ("seq", "digest", "proof")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    seq: int
    digest: bytes
    proof: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    def __init__(self, seq: _Optional[int] = ..., digest: _Optional[bytes] = ..., proof: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ...) -> None: ...

class BlockHeader(_message.Message):
    __slots__ = ("chain_id", "height", "parent_hash", "proposer", "timestamp_ms", "tx_root", "state_root", "proposal_digest", "link")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PARENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    TX_ROOT_FIELD_NUMBER: _ClassVar[int]
    STATE_ROOT_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    height: int
    parent_hash: bytes
    proposer: int
    timestamp_ms: int
    tx_root: bytes
    state_root: bytes
    proposal_digest: bytes
    link: bytes
    def __init__(self, chain_id: _Optional[str] = ..., height: _Optional[int] = ..., parent_hash: _Optional[bytes] = ..., proposer: _Optional[int] = ..., timestamp_ms: _Optional[int] = ..., tx_root: _Optional[bytes] = ..., state_root: _Optional[bytes] = ..., proposal_digest: _Optional[bytes] = ..., link: _Optional[bytes] = ...) -> None: ...
