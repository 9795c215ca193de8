"""The one translator between protobuf (node.pb) and the domain types.

No other module imports both `node.pb` and `consensus` (docs/design.md, Rule 5).
The rest of the node passes domain objects around; the gRPC edges call
`*_to_proto` / `*_from_proto` (or `encode_*` / `decode_*` for bytes) here.

Decoding is validation: everything from the network or the disk goes through
a `*_from_proto` / `decode_*` function, which returns a well-formed domain
object or raises `CodecError` (a ValueError) saying what is wrong and where,
e.g. "malformed PrePrepare: proposal.requests[3].id: expected 32 bytes, got 5".
Nothing else escapes, whatever the input bytes. Well-formed means:

* the bytes parse as the expected protobuf message;
* a ConsensusMessage envelope has exactly one known case set;
* required sub-messages are present (a PrePrepare sent on its own carries
  its proposal, ...), and bodies are absent where the protocol carries
  digests: the PrePrepares inside a PreparedCertificate or a NewView are
  headers (no proposal), so no ViewChange or NewView grows with the payload;
* digests, hashes and request ids are 32 bytes; signatures are empty
  (unsigned) or 64 bytes;
* chain ids are 1..CHAIN_ID_BYTES_MAX bytes of UTF-8;
* view, seq, heights and timestamps are at most 2^63-1. The wire allows
  2^64-1, but then `seq + 1` or `view + 1` in the core would no longer fit
  the 8-byte fields it signs and hashes: garbage from a peer must never make
  `Replica.step()` raise.

Whether a message is *valid* (signed by its replica, in the watermarks, ...)
is the replica's business, not the codec's. Encoding domain objects the
codec could not decode (a negative seq, a str where bytes belong) is misuse
and raises CodecError too.

Serialization is deterministic (`SerializeToString(deterministic=True)`),
and a transaction inside a Request body must be in exactly that canonical
form, so every replica stores byte-identical blocks (docs/testing.md S6).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from google.protobuf.message import Message as ProtoMessage

from consensus import messages as m
from consensus.block import BlockHeader
from consensus.events import Record, RecordKey, StableCheckpoint, ViewRecord
from consensus.metadata import PROPOSAL_METADATA_BYTES_MAX
from node.core import receipts
from node.core.receipts import Receipt
from node.pb import client_pb2, consensus_pb2, peer_pb2
from node.core.tx import CHAIN_ID_BYTES_MAX, Transaction

__all__ = [
    "CodecError",
    "DIGEST_BYTES", "SIGNATURE_BYTES", "INT_MAX",
    "to_proto", "from_proto",
    "message_to_proto", "message_from_proto", "encode_message", "decode_message",
    "envelope_to_proto", "envelope_from_proto",
    "tx_to_proto", "tx_from_proto", "encode_tx", "decode_tx", "request_from_tx", "tx_from_request",
    "receipt_to_proto", "receipt_from_proto", "encode_receipt", "decode_receipt",
    "encode_header", "decode_header", "encode_committed_block", "decode_committed_block",
    "record_kind", "encode_record", "decode_record",
    "parse_canonical",
    "encode_read_heights", "decode_read_heights",
]

DIGEST_BYTES = 32
SIGNATURE_BYTES = 64
INT_MAX = (1 << 63) - 1
"""Upper bound for view, seq, height and timestamp values we accept."""


T = TypeVar("T")
P = TypeVar("P", bound=ProtoMessage)


class CodecError(ValueError):
    """Bytes or a protobuf message that do not make a well-formed domain object
    (or a domain object that cannot be encoded)."""


# ---- field checks (decode side) ---------------------------------------------
# Each raises CodecError("<field>: <reason>"); enclosing decoders prefix the
# path ("proposal.requests[3].id: ...").

def _chain_id(value: str, field: str = "chain_id") -> str:
    if not value:
        raise CodecError(f"{field}: empty")
    size = len(value.encode())
    if size > CHAIN_ID_BYTES_MAX:
        raise CodecError(f"{field}: {size} bytes, more than {CHAIN_ID_BYTES_MAX}")
    return value


def _int(value: int, field: str) -> int:
    if value > INT_MAX:
        raise CodecError(f"{field}: {value} is above 2^63-1")
    return value


def _digest(value: bytes, field: str = "digest") -> bytes:
    if len(value) != DIGEST_BYTES:
        raise CodecError(f"{field}: expected {DIGEST_BYTES} bytes, got {len(value)}")
    return value


def _bounded(value: bytes, most: int, field: str) -> bytes:
    if len(value) > most:
        raise CodecError(f"{field}: {len(value)} bytes, more than {most}")
    return value


def _signature(value: bytes) -> bytes:
    if len(value) not in (0, SIGNATURE_BYTES):
        raise CodecError(f"signature: expected 0 or {SIGNATURE_BYTES} bytes, got {len(value)}")
    return value


def _sub(decode: Callable[[Any], T], parent: ProtoMessage, field: str) -> T:
    """Decode the required sub-message `field` of `parent`."""
    if not parent.HasField(field):
        raise CodecError(f"{field}: missing")
    try:
        return decode(getattr(parent, field))
    except CodecError as exc:
        raise CodecError(f"{field}.{exc}") from None


def _each(decode: Callable[[Any], T], items: Iterable[Any], field: str) -> tuple[T, ...]:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(decode(item))
        except CodecError as exc:
            raise CodecError(f"{field}[{i}].{exc}") from None
    return tuple(out)


def _parse(cls: type[P], data: bytes) -> P:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes for {cls.__name__}, got {type(data).__name__}")
    try:
        return cls.FromString(bytes(data))
    except Exception as exc:  # DecodeError, and anything else the parser may throw
        raise CodecError(f"not a valid {cls.__name__} protobuf: {exc}") from None


def _serialize(pb: ProtoMessage) -> bytes:
    return pb.SerializeToString(deterministic=True)


def _guard_encode(build: Callable[[T], P], obj: T) -> P:
    """Run a to-proto builder, turning misuse (negative ints, wrong types)
    into CodecError."""
    try:
        return build(obj)
    except CodecError:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(obj).__name__}: {exc}") from None


# ---- consensus: requests, proposals, certificates -----------------------------

def _request_to_pb(r: m.Request) -> consensus_pb2.Request:
    return consensus_pb2.Request(id=r.id, body=r.body)


def _request_from_pb(pb: consensus_pb2.Request) -> m.Request:
    return m.Request(id=_digest(pb.id, "id"), body=pb.body)


def _proposal_to_pb(p: m.Proposal) -> consensus_pb2.Proposal:
    pb = consensus_pb2.Proposal(
        chain_id=p.chain_id, seq=p.seq, proposer=p.proposer, timestamp_ms=p.timestamp_ms, metadata=p.metadata,
    )
    add = pb.requests.add  # in place: no temporary message per request to copy
    for r in p.requests:
        add(id=r.id, body=r.body)
    return pb


def _proposal_from_pb(pb: consensus_pb2.Proposal) -> m.Proposal:
    return m.Proposal(
        chain_id=_chain_id(pb.chain_id), seq=_int(pb.seq, "seq"), proposer=pb.proposer,
        timestamp_ms=_int(pb.timestamp_ms, "timestamp_ms"),
        requests=_each(_request_from_pb, pb.requests, "requests"),
        metadata=_bounded(pb.metadata, PROPOSAL_METADATA_BYTES_MAX, "metadata"),
    )


def _commit_certificate_to_pb(c: m.CommitCertificate) -> consensus_pb2.CommitCertificate:
    return consensus_pb2.CommitCertificate(
        chain_id=c.chain_id, view=c.view, seq=c.seq, digest=c.digest, link=c.link,
        commits=[_commit_to_pb(x) for x in c.commits],
    )


def _commit_certificate_from_pb(pb: consensus_pb2.CommitCertificate) -> m.CommitCertificate:
    return m.CommitCertificate(
        chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"), seq=_int(pb.seq, "seq"),
        digest=_digest(pb.digest), link=_digest(pb.link, "link"),
        commits=_each(_commit_from_pb, pb.commits, "commits"),
    )


def _prepared_certificate_to_pb(c: m.PreparedCertificate) -> consensus_pb2.PreparedCertificate:
    return consensus_pb2.PreparedCertificate(
        pre_prepare=_pre_prepare_to_pb(c.pre_prepare),
        prepares=[_prepare_to_pb(x) for x in c.prepares],
    )


def _prepared_certificate_codec(pre_prepare_from_pb):
    def from_pb(pb: consensus_pb2.PreparedCertificate) -> m.PreparedCertificate:
        return m.PreparedCertificate(
            pre_prepare=_sub(pre_prepare_from_pb, pb, "pre_prepare"),
            prepares=_each(_prepare_from_pb, pb.prepares, "prepares"),
        )
    return from_pb


def _committed_block_to_pb(b: m.CommittedBlock) -> consensus_pb2.CommittedBlock:
    return consensus_pb2.CommittedBlock(
        proposal=_proposal_to_pb(b.proposal), certificate=_commit_certificate_to_pb(b.certificate),
    )


def _committed_block_from_pb(pb: consensus_pb2.CommittedBlock) -> m.CommittedBlock:
    return m.CommittedBlock(
        proposal=_sub(_proposal_from_pb, pb, "proposal"),
        certificate=_sub(_commit_certificate_from_pb, pb, "certificate"),
    )


# ---- consensus: the peer messages ---------------------------------------------

def _pre_prepare_to_pb(x: m.PrePrepare) -> consensus_pb2.PrePrepare:
    pb = consensus_pb2.PrePrepare(
        chain_id=x.chain_id, view=x.view, seq=x.seq, digest=x.digest, replica=x.replica, signature=x.signature,
    )
    if x.proposal is not None:
        pb.proposal.CopyFrom(_proposal_to_pb(x.proposal))
    return pb


def _pre_prepare_codec(proposal: str):
    """A PrePrepare decoder whose proposal is "required" (sent on its own),
    "absent" (a header in a certificate or NewView) or "optional" (a durable
    record, or the generic from_proto)."""
    def from_pb(pb: consensus_pb2.PrePrepare) -> m.PrePrepare:
        has = pb.HasField("proposal")
        if proposal == "absent" and has:
            raise CodecError("proposal: must be absent (certificates and NewViews carry digests, not bodies)")
        body = _sub(_proposal_from_pb, pb, "proposal") if has or proposal == "required" else None
        return m.PrePrepare(
            chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"), seq=_int(pb.seq, "seq"),
            digest=_digest(pb.digest), proposal=body, replica=pb.replica, signature=_signature(pb.signature),
        )
    return from_pb


_pre_prepare_from_pb = _pre_prepare_codec("required")
_pre_prepare_header_from_pb = _pre_prepare_codec("absent")
_prepared_certificate_from_pb = _prepared_certificate_codec(_pre_prepare_header_from_pb)
# Durable records keep the bodies the wire leaves out.
_pre_prepare_record_from_pb = _pre_prepare_codec("optional")
_prepared_record_from_pb = _prepared_certificate_codec(_pre_prepare_record_from_pb)


def _vote_codec(domain_cls, pb_cls, digests: tuple[str, ...]):
    """Prepare and Commit share their fields but a Commit's link (one more
    digest): one converter pair each."""
    def to_pb(x):
        return pb_cls(chain_id=x.chain_id, view=x.view, seq=x.seq, replica=x.replica, signature=x.signature,
                      **{name: getattr(x, name) for name in digests})

    def from_pb(pb):
        return domain_cls(
            chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"), seq=_int(pb.seq, "seq"),
            replica=pb.replica, signature=_signature(pb.signature),
            **{name: _digest(getattr(pb, name), name) for name in digests},
        )

    return to_pb, from_pb


_prepare_to_pb, _prepare_from_pb = _vote_codec(m.Prepare, consensus_pb2.Prepare, ("digest",))
_commit_to_pb, _commit_from_pb = _vote_codec(m.Commit, consensus_pb2.Commit, ("digest", "link"))


def _seq_digest_codec(domain_cls, pb_cls):
    """Checkpoint and FetchProposal have the same fields: one converter pair each."""
    def to_pb(x):
        return pb_cls(chain_id=x.chain_id, seq=x.seq, digest=x.digest, replica=x.replica, signature=x.signature)

    def from_pb(pb):
        return domain_cls(
            chain_id=_chain_id(pb.chain_id), seq=_int(pb.seq, "seq"), digest=_digest(pb.digest),
            replica=pb.replica, signature=_signature(pb.signature),
        )

    return to_pb, from_pb


_checkpoint_to_pb, _checkpoint_from_pb = _seq_digest_codec(m.Checkpoint, consensus_pb2.Checkpoint)
_fetch_proposal_to_pb, _fetch_proposal_from_pb = _seq_digest_codec(m.FetchProposal, consensus_pb2.FetchProposal)


def _view_change_to_pb(x: m.ViewChange) -> consensus_pb2.ViewChange:
    return consensus_pb2.ViewChange(
        chain_id=x.chain_id, view=x.view, checkpoint=_stable_checkpoint_to_pb(x.checkpoint),
        prepared=[_prepared_certificate_to_pb(p) for p in x.prepared],
        replica=x.replica, signature=x.signature,
    )


def _view_change_from_pb(pb: consensus_pb2.ViewChange) -> m.ViewChange:
    return m.ViewChange(
        chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"),
        checkpoint=_sub(_stable_checkpoint_from_pb, pb, "checkpoint"),
        prepared=_each(_prepared_certificate_from_pb, pb.prepared, "prepared"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


def _new_view_to_pb(x: m.NewView) -> consensus_pb2.NewView:
    return consensus_pb2.NewView(
        chain_id=x.chain_id, view=x.view,
        view_changes=[_view_change_to_pb(v) for v in x.view_changes],
        pre_prepares=[_pre_prepare_to_pb(p) for p in x.pre_prepares],
        replica=x.replica, signature=x.signature,
    )


def _new_view_from_pb(pb: consensus_pb2.NewView) -> m.NewView:
    return m.NewView(
        chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"),
        view_changes=_each(_view_change_from_pb, pb.view_changes, "view_changes"),
        pre_prepares=_each(_pre_prepare_header_from_pb, pb.pre_prepares, "pre_prepares"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


def _request_batch_to_pb(x: m.RequestBatch) -> consensus_pb2.RequestBatch:
    pb = consensus_pb2.RequestBatch(chain_id=x.chain_id, replica=x.replica, signature=x.signature)
    add = pb.requests.add
    for r in x.requests:
        add(id=r.id, body=r.body)
    return pb


def _request_batch_from_pb(pb: consensus_pb2.RequestBatch) -> m.RequestBatch:
    return m.RequestBatch(
        chain_id=_chain_id(pb.chain_id), requests=_each(_request_from_pb, pb.requests, "requests"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


def _status_to_pb(x: m.Status) -> consensus_pb2.Status:
    return consensus_pb2.Status(
        chain_id=x.chain_id, view=x.view, executed_seq=x.executed_seq, stable_seq=x.stable_seq,
        replica=x.replica, signature=x.signature,
    )


def _status_from_pb(pb: consensus_pb2.Status) -> m.Status:
    return m.Status(
        chain_id=_chain_id(pb.chain_id), view=_int(pb.view, "view"),
        executed_seq=_int(pb.executed_seq, "executed_seq"), stable_seq=_int(pb.stable_seq, "stable_seq"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


def _fetch_blocks_to_pb(x: m.FetchBlocks) -> consensus_pb2.FetchBlocks:
    return consensus_pb2.FetchBlocks(
        chain_id=x.chain_id, from_seq=x.from_seq, to_seq=x.to_seq,
        replica=x.replica, signature=x.signature,
    )


def _fetch_blocks_from_pb(pb: consensus_pb2.FetchBlocks) -> m.FetchBlocks:
    return m.FetchBlocks(
        chain_id=_chain_id(pb.chain_id), from_seq=_int(pb.from_seq, "from_seq"),
        to_seq=_int(pb.to_seq, "to_seq"), replica=pb.replica, signature=_signature(pb.signature),
    )


def _blocks_reply_to_pb(x: m.BlocksReply) -> consensus_pb2.BlocksReply:
    return consensus_pb2.BlocksReply(
        chain_id=x.chain_id, blocks=[_committed_block_to_pb(b) for b in x.blocks],
        checkpoints=[_stable_checkpoint_to_pb(c) for c in x.checkpoints],
        replica=x.replica, signature=x.signature,
    )


def _blocks_reply_from_pb(pb: consensus_pb2.BlocksReply) -> m.BlocksReply:
    return m.BlocksReply(
        chain_id=_chain_id(pb.chain_id), blocks=_each(_committed_block_from_pb, pb.blocks, "blocks"),
        checkpoints=_each(_stable_checkpoint_from_pb, pb.checkpoints, "checkpoints"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


def _proposal_reply_to_pb(x: m.ProposalReply) -> consensus_pb2.ProposalReply:
    return consensus_pb2.ProposalReply(
        chain_id=x.chain_id, proposal=_proposal_to_pb(x.proposal), replica=x.replica, signature=x.signature,
    )


def _proposal_reply_from_pb(pb: consensus_pb2.ProposalReply) -> m.ProposalReply:
    return m.ProposalReply(
        chain_id=_chain_id(pb.chain_id), proposal=_sub(_proposal_from_pb, pb, "proposal"),
        replica=pb.replica, signature=_signature(pb.signature),
    )


# ---- durable records, headers -------------------------------------------------

def _view_record_to_pb(x: ViewRecord) -> consensus_pb2.ViewRecord:
    return consensus_pb2.ViewRecord(view=x.view, changing=x.changing, floor=x.floor)


def _view_record_from_pb(pb: consensus_pb2.ViewRecord) -> ViewRecord:
    return ViewRecord(view=_int(pb.view, "view"), changing=pb.changing, floor=_int(pb.floor, "floor"))


def _stable_checkpoint_to_pb(x: StableCheckpoint) -> consensus_pb2.StableCheckpoint:
    return consensus_pb2.StableCheckpoint(
        seq=x.seq, digest=x.digest, proof=[_checkpoint_to_pb(c) for c in x.proof],
    )


def _stable_checkpoint_from_pb(pb: consensus_pb2.StableCheckpoint) -> StableCheckpoint:
    seq = _int(pb.seq, "seq")
    return StableCheckpoint(
        seq=seq, digest=b"" if seq == 0 and not pb.digest else _digest(pb.digest),  # genesis has no digest
        proof=_each(_checkpoint_from_pb, pb.proof, "proof"),
    )


def _header_to_pb(h: BlockHeader) -> consensus_pb2.BlockHeader:
    return consensus_pb2.BlockHeader(
        chain_id=h.chain_id, height=h.height, parent_hash=h.parent_hash,
        proposer=h.proposer, timestamp_ms=h.timestamp_ms, tx_root=h.tx_root,
        state_root=h.state_root, proposal_digest=h.proposal_digest, link=h.link,
    )


def _header_from_pb(pb: consensus_pb2.BlockHeader) -> BlockHeader:
    return BlockHeader(
        chain_id=_chain_id(pb.chain_id), height=_int(pb.height, "height"),
        parent_hash=_digest(pb.parent_hash, "parent_hash"),
        proposer=pb.proposer, timestamp_ms=_int(pb.timestamp_ms, "timestamp_ms"),
        tx_root=_digest(pb.tx_root, "tx_root"), state_root=_digest(pb.state_root, "state_root"),
        proposal_digest=_digest(pb.proposal_digest, "proposal_digest"), link=_digest(pb.link, "link"),
    )


# ---- transactions and receipts ------------------------------------------------

def _tx_to_pb(tx: Transaction) -> client_pb2.Transaction:
    return client_pb2.Transaction(
        chain_id=tx.chain_id, sender=tx.sender, nonce=tx.nonce, contract=tx.contract,
        method=tx.method, payload=tx.payload, signature=tx.signature,
    )


def _tx_from_pb(pb: client_pb2.Transaction) -> Transaction:
    # Faithful: field shapes are node.core.tx.validate_shape's job (it has the
    # messages for clients); protobuf already guarantees the types.
    return Transaction(
        chain_id=pb.chain_id, sender=pb.sender, nonce=pb.nonce, contract=pb.contract,
        method=pb.method, payload=pb.payload, signature=pb.signature,
    )


_RECEIPT_STATUS_TO_PB = {
    receipts.OK: client_pb2.Receipt.OK,
    receipts.FAILED: client_pb2.Receipt.FAILED,
    receipts.DUPLICATE: client_pb2.Receipt.DUPLICATE,
}
_RECEIPT_STATUS_FROM_PB = {v: k for k, v in _RECEIPT_STATUS_TO_PB.items()}


def _receipt_to_pb(r: Receipt) -> client_pb2.Receipt:
    status = _RECEIPT_STATUS_TO_PB.get(r.status)
    if status is None:
        raise CodecError(f"cannot encode Receipt: unknown status {r.status!r}")
    return client_pb2.Receipt(
        tx_id=r.tx_id, height=r.height, index=r.index, status=status,
        message=r.message, output=r.output,
    )


def _receipt_from_pb(pb: client_pb2.Receipt) -> Receipt:
    status = _RECEIPT_STATUS_FROM_PB.get(pb.status)
    if status is None:
        raise CodecError(f"status: {pb.status} is not OK, FAILED or DUPLICATE")
    return Receipt(
        tx_id=_digest(pb.tx_id, "tx_id"), height=_int(pb.height, "height"), index=pb.index,
        status=status, message=pb.message, output=pb.output,
    )


# ---- generic dispatch -----------------------------------------------------------

_TO_PB: dict[type, Callable[[Any], ProtoMessage]] = {
    m.Request: _request_to_pb,
    m.Proposal: _proposal_to_pb,
    m.PrePrepare: _pre_prepare_to_pb,
    m.Prepare: _prepare_to_pb,
    m.Commit: _commit_to_pb,
    m.Checkpoint: _checkpoint_to_pb,
    m.PreparedCertificate: _prepared_certificate_to_pb,
    m.CommitCertificate: _commit_certificate_to_pb,
    m.CommittedBlock: _committed_block_to_pb,
    m.ViewChange: _view_change_to_pb,
    m.NewView: _new_view_to_pb,
    m.RequestBatch: _request_batch_to_pb,
    m.Status: _status_to_pb,
    m.FetchBlocks: _fetch_blocks_to_pb,
    m.BlocksReply: _blocks_reply_to_pb,
    m.FetchProposal: _fetch_proposal_to_pb,
    m.ProposalReply: _proposal_reply_to_pb,
    ViewRecord: _view_record_to_pb,
    StableCheckpoint: _stable_checkpoint_to_pb,
    BlockHeader: _header_to_pb,
    Transaction: _tx_to_pb,
    Receipt: _receipt_to_pb,
}

_FROM_PB: dict[type, Callable[[Any], Any]] = {
    consensus_pb2.Request: _request_from_pb,
    consensus_pb2.Proposal: _proposal_from_pb,
    consensus_pb2.PrePrepare: _pre_prepare_record_from_pb,
    consensus_pb2.Prepare: _prepare_from_pb,
    consensus_pb2.Commit: _commit_from_pb,
    consensus_pb2.Checkpoint: _checkpoint_from_pb,
    consensus_pb2.PreparedCertificate: _prepared_record_from_pb,
    consensus_pb2.CommitCertificate: _commit_certificate_from_pb,
    consensus_pb2.CommittedBlock: _committed_block_from_pb,
    consensus_pb2.ViewChange: _view_change_from_pb,
    consensus_pb2.NewView: _new_view_from_pb,
    consensus_pb2.RequestBatch: _request_batch_from_pb,
    consensus_pb2.Status: _status_from_pb,
    consensus_pb2.FetchBlocks: _fetch_blocks_from_pb,
    consensus_pb2.BlocksReply: _blocks_reply_from_pb,
    consensus_pb2.FetchProposal: _fetch_proposal_from_pb,
    consensus_pb2.ProposalReply: _proposal_reply_from_pb,
    consensus_pb2.ViewRecord: _view_record_from_pb,
    consensus_pb2.StableCheckpoint: _stable_checkpoint_from_pb,
    consensus_pb2.BlockHeader: _header_from_pb,
    client_pb2.Transaction: _tx_from_pb,
    client_pb2.Receipt: _receipt_from_pb,
}


def to_proto(obj: Any) -> ProtoMessage:
    """The protobuf message for any domain object this module knows: every
    consensus message and certificate, Request, Proposal, CommittedBlock,
    ViewRecord, StableCheckpoint, BlockHeader, Transaction, Receipt."""
    build = _TO_PB.get(type(obj))
    if build is None:
        raise CodecError(f"no protobuf form for {type(obj).__name__}")
    return _guard_encode(build, obj)


def from_proto(pb: ProtoMessage) -> Any:
    """The domain object for a protobuf message (inverse of to_proto).
    Raises CodecError if it is not well formed."""
    decode = _FROM_PB.get(type(pb))
    if decode is None:
        raise CodecError(f"no domain type for {type(pb).__name__}")
    try:
        return decode(pb)
    except CodecError as exc:
        raise CodecError(f"malformed {type(pb).__name__}: {exc}") from None


# ---- the ConsensusMessage envelope ----------------------------------------------

_CASE_OF: dict[type, str] = {
    m.PrePrepare: "pre_prepare",
    m.Prepare: "prepare",
    m.Commit: "commit",
    m.Checkpoint: "checkpoint",
    m.ViewChange: "view_change",
    m.NewView: "new_view",
    m.RequestBatch: "request_batch",
    m.Status: "status",
    m.FetchBlocks: "fetch_blocks",
    m.BlocksReply: "blocks_reply",
    m.FetchProposal: "fetch_proposal",
    m.ProposalReply: "proposal_reply",
}
_DECODE_CASE: dict[str, Callable[[Any], m.Message]] = {
    "pre_prepare": _pre_prepare_from_pb,
    "prepare": _prepare_from_pb,
    "commit": _commit_from_pb,
    "checkpoint": _checkpoint_from_pb,
    "view_change": _view_change_from_pb,
    "new_view": _new_view_from_pb,
    "request_batch": _request_batch_from_pb,
    "status": _status_from_pb,
    "fetch_blocks": _fetch_blocks_from_pb,
    "blocks_reply": _blocks_reply_from_pb,
    "fetch_proposal": _fetch_proposal_from_pb,
    "proposal_reply": _proposal_reply_from_pb,
}
assert set(_CASE_OF.values()) == set(_DECODE_CASE), "envelope tables disagree"
assert set(_DECODE_CASE) == {f.name for f in consensus_pb2.ConsensusMessage.DESCRIPTOR.oneofs_by_name[
    "message"].fields}, "consensus.proto's ConsensusMessage oneof and the codec disagree"


def message_to_proto(msg: m.Message) -> consensus_pb2.ConsensusMessage:
    case = _CASE_OF.get(type(msg))
    if case is None:
        raise CodecError(f"not a consensus message: {type(msg).__name__}")
    return consensus_pb2.ConsensusMessage(**{case: _guard_encode(_TO_PB[type(msg)], msg)})


def message_from_proto(pb: consensus_pb2.ConsensusMessage) -> m.Message:
    case = pb.WhichOneof("message")
    if case is None:
        raise CodecError("ConsensusMessage has no message set (empty, or a case this version does not know)")
    inner = getattr(pb, case)
    try:
        return _DECODE_CASE[case](inner)
    except CodecError as exc:
        raise CodecError(f"malformed {type(inner).__name__}: {exc}") from None


def encode_message(msg: m.Message) -> bytes:
    """A consensus message as ConsensusMessage bytes."""
    return _serialize(message_to_proto(msg))


def decode_message(data: bytes) -> m.Message:
    """Inverse of encode_message. Raises CodecError, and only CodecError, on
    any input that is not a well-formed consensus message."""
    return message_from_proto(_parse(consensus_pb2.ConsensusMessage, data))


def envelope_to_proto(msg: m.Message) -> peer_pb2.PeerEnvelope:
    """What a replica writes to its Peer.Deliver stream."""
    return peer_pb2.PeerEnvelope(chain_id=msg.chain_id, message=message_to_proto(msg))


def envelope_from_proto(pb: peer_pb2.PeerEnvelope) -> m.Message:
    """The message in an envelope read from a Peer.Deliver stream; its
    chain_id must equal the envelope's (which the transport routes on)."""
    if not pb.HasField("message"):
        raise CodecError("PeerEnvelope has no message")
    msg = message_from_proto(pb.message)
    if msg.chain_id != pb.chain_id:
        raise CodecError(
            f"PeerEnvelope for chain {pb.chain_id!r:.80} carries a {type(msg).__name__} "
            f"for chain {msg.chain_id!r}"
        )
    return msg


# ---- transactions -----------------------------------------------------------------

def tx_to_proto(tx: Transaction) -> client_pb2.Transaction:
    return _guard_encode(_tx_to_pb, tx)


def tx_from_proto(pb: client_pb2.Transaction) -> Transaction:
    """The domain transaction, field for field. Does not check shapes or the
    signature: call node.core.tx.validate_shape and verify_signature."""
    return _tx_from_pb(pb)


def encode_tx(tx: Transaction) -> bytes:
    """The canonical bytes of a transaction (a Request body)."""
    return _serialize(tx_to_proto(tx))


def decode_tx(data: bytes) -> Transaction:
    return _tx_from_pb(_parse(client_pb2.Transaction, data))


def request_from_tx(tx: Transaction) -> m.Request:
    """What the node hands to consensus: id = the transaction id, body = its
    canonical protobuf encoding."""
    return m.Request(id=tx.id, body=encode_tx(tx))


def tx_from_request(request: m.Request) -> Transaction:
    """The transaction inside a (committed) Request. Raises CodecError unless
    the body parses, is in canonical form (so every replica stores the same
    bytes) and hashes to the request's id. Shapes and signature are not
    checked here (node.core.tx.validate_shape, verify_signature)."""
    tx = decode_tx(request.body)
    if encode_tx(tx) != request.body:
        raise CodecError("request body is not the canonical encoding of its transaction")
    if tx.id != request.id:
        raise CodecError(
            f"request id {request.id.hex()[:16]}... does not match its transaction "
            f"{tx.id.hex()[:16]}..."
        )
    return tx


# ---- receipts, headers, committed blocks -------------------------------------------

def receipt_to_proto(receipt: Receipt) -> client_pb2.Receipt:
    return _guard_encode(_receipt_to_pb, receipt)


def receipt_from_proto(pb: client_pb2.Receipt) -> Receipt:
    return from_proto(pb)


def encode_receipt(receipt: Receipt) -> bytes:
    return _serialize(receipt_to_proto(receipt))


def decode_receipt(data: bytes) -> Receipt:
    return from_proto(_parse(client_pb2.Receipt, data))


def encode_header(header: BlockHeader) -> bytes:
    return _serialize(to_proto(header))


def decode_header(data: bytes) -> BlockHeader:
    return from_proto(_parse(consensus_pb2.BlockHeader, data))


def encode_committed_block(block: m.CommittedBlock) -> bytes:
    """A committed block (proposal + commit certificate) as the ledger stores it."""
    return _serialize(to_proto(block))


def decode_committed_block(data: bytes) -> m.CommittedBlock:
    return from_proto(_parse(consensus_pb2.CommittedBlock, data))


# ---- durable consensus records (consensus.events.Write) ------------------------------
# Keys: ("view",), ("pre_prepare", seq), ("prepared", seq), ("checkpoint",); how
# they are laid out in LevelDB is node/ledger/layout.py's business. The key
# fixes the record's type, so values are bare protobuf messages.

_U64_MAX = (1 << 64) - 1
_SEQ_KINDS = ("pre_prepare", "prepared")

_RECORD_TYPES: dict[str, tuple[type, type]] = {  # key kind -> (domain type, protobuf type)
    "view": (ViewRecord, consensus_pb2.ViewRecord),
    "checkpoint": (StableCheckpoint, consensus_pb2.StableCheckpoint),
    "pre_prepare": (m.PrePrepare, consensus_pb2.PrePrepare),
    "prepared": (m.PreparedCertificate, consensus_pb2.PreparedCertificate),
}


def record_kind(key: RecordKey) -> str:
    """The key's kind; raises CodecError if it is not one of the four shapes."""
    if isinstance(key, tuple) and len(key) == 1 and key[0] in ("view", "checkpoint"):
        return key[0]
    if (isinstance(key, tuple) and len(key) == 2 and key[0] in _SEQ_KINDS
            and type(key[1]) is int and 0 <= key[1] <= _U64_MAX):
        return key[0]
    raise CodecError(f"not a consensus record key: {key!r:.80}")


def encode_record(key: RecordKey, record: Record) -> bytes:
    """The value stored under `key`. The record's type must be the one the key
    names, and a seq key must match the record's seq. (A None value means
    "delete the key": there is nothing to encode.)"""
    kind = record_kind(key)
    domain_type, _ = _RECORD_TYPES[kind]
    if type(record) is not domain_type:
        raise CodecError(f"record key {key!r} holds a {domain_type.__name__}, got {type(record).__name__}")
    if len(key) == 2 and record.seq != key[1]:
        raise CodecError(f"record key {key!r} does not match the record's seq {record.seq}")
    return _serialize(to_proto(record))


def decode_record(key: RecordKey, data: bytes) -> Record:
    """Inverse of encode_record; raises CodecError on a corrupt value or one
    whose seq disagrees with its key."""
    kind = record_kind(key)
    _, pb_type = _RECORD_TYPES[kind]
    record = from_proto(_parse(pb_type, data))
    if len(key) == 2 and record.seq != key[1]:
        raise CodecError(f"record under key {key!r} has seq {record.seq}")
    return record


# ---- worst-case message sizes (node/core/genesis.py checks them) ---------------------------

def _varint_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _field_bytes(size: int) -> int:
    """A length-delimited field (sub-message or bytes) of `size` bytes, field number < 16."""
    return 1 + _varint_bytes(size) + size


def worst_case_message_bytes(*, chain_id: str, validators: int, batch_txs_max: int, batch_bytes_max: int,
                             window_blocks: int) -> dict[str, int]:
    """Upper bounds of the PeerEnvelope bytes of every message whose size
    depends on the consensus parameters, as a replica or its shell builds
    them: a PrePrepare, RequestBatch or ProposalReply holds one batch
    (batch_txs_max requests, batch_bytes_max bytes counted as
    len(id) + len(body), consensus.replica._batches); a committed block adds
    a commit certificate (and in a BlocksReply a stable checkpoint's proof);
    a ViewChange holds at most window_blocks prepared
    certificates (headers, consensus.replica._valid_view_change); a NewView
    2f+1 ViewChanges and at most window_blocks PrePrepare headers.
    Certificates count n signatures, the most a valid one may carry.
    Fixed parts are measured on real messages with every integer at its
    longest encoding; the requests are bounded analytically (each adds its
    bytes plus tags and lengths)."""
    n, top, chain = validators, INT_MAX, chain_id
    sig, digest, replica = b"\xff" * SIGNATURE_BYTES, b"\xff" * DIGEST_BYTES, (1 << 32) - 1
    vote = dict(chain_id=chain, view=top, seq=top, digest=digest, replica=replica, signature=sig)
    empty = m.Proposal(chain_id=chain, seq=top, proposer=replica, timestamp_ms=top,
                       metadata=b"\xff" * PROPOSAL_METADATA_BYTES_MAX)  # no requests, the most metadata
    header = m.PrePrepare(proposal=None, **vote)
    size = lambda obj: to_proto(obj).ByteSize()  # noqa: E731

    per_request = 1 + _varint_bytes(batch_bytes_max + 64) + 2 + 1 + _varint_bytes(batch_bytes_max)
    requests = batch_bytes_max + min(batch_txs_max, batch_bytes_max // DIGEST_BYTES) * per_request
    proposal = size(empty) + requests
    certificate = size(m.CommitCertificate(chain_id=chain, view=top, seq=top, digest=digest, link=digest,
                                           commits=(m.Commit(link=digest, **vote),) * n))
    prepared = size(m.PreparedCertificate(pre_prepare=header, prepares=(m.Prepare(**vote),) * n))
    checkpoint = m.StableCheckpoint(seq=top, digest=digest, proof=(m.Checkpoint(
        chain_id=chain, seq=top, digest=digest, replica=replica, signature=sig),) * n)
    view_change = size(m.ViewChange(chain_id=chain, view=top, checkpoint=checkpoint, prepared=(), replica=replica,
                                    signature=sig)) + window_blocks * _field_bytes(prepared)
    new_view = (size(m.NewView(chain_id=chain, view=top, view_changes=(), pre_prepares=(), replica=replica,
                               signature=sig))
                + (2 * ((n - 1) // 3) + 1) * _field_bytes(view_change) + window_blocks * _field_bytes(size(header)))
    tail = dict(chain_id=chain, replica=replica, signature=sig)
    full = _field_bytes(proposal) - _field_bytes(size(empty))  # what a full batch adds to an empty proposal
    bodies = {
        "PrePrepare": size(header) + _field_bytes(proposal),
        "RequestBatch": size(m.RequestBatch(requests=(), **tail)) + requests,
        "ProposalReply": size(m.ProposalReply(proposal=empty, **tail)) + full,
        "BlocksReply": size(m.BlocksReply(blocks=(), **tail))  # one block and its checkpoint proof; see node/chain/chain_node.py
        + _field_bytes(_field_bytes(proposal) + _field_bytes(certificate)) + _field_bytes(size(checkpoint)),
        "ViewChange": view_change,
        "NewView": new_view,
    }
    # PeerEnvelope{chain_id, message: ConsensusMessage{<case>: body}}
    return {kind: _field_bytes(len(chain)) + _field_bytes(_field_bytes(body)) for kind, body in bodies.items()}


# ---- cross-chain read heights (docs/design.md, "Cross-chain reads") -------------

def encode_read_heights(heights: dict[str, int]) -> bytes:
    """The canonical ReadHeights for {chain id: height}: sorted by chain id."""
    return _serialize(_guard_encode(lambda h: consensus_pb2.ReadHeights(entries=[
        consensus_pb2.ReadHeights.Entry(chain_id=c, height=h[c]) for c in sorted(h)]), heights))


def decode_read_heights(data: bytes) -> dict[str, int]:
    """{chain id: height} from a proposal's metadata: the canonical encoding,
    chains sorted and each once, heights at most 2^63-1; CodecError otherwise."""
    pb = parse_canonical(consensus_pb2.ReadHeights, data, "read heights")
    out: dict[str, int] = {}
    for i, e in enumerate(pb.entries):
        chain = _chain_id(e.chain_id, f"entries[{i}].chain_id")
        if out and chain <= list(out)[-1]:
            raise CodecError(f"entries[{i}].chain_id: {chain!r} is not above the previous entry's")
        out[chain] = _int(e.height, f"entries[{i}].height")
    return out


# ---- application records (docs/design.md, "Records") ----------------------------

def parse_canonical(cls: type[P], data: bytes, what: str) -> P:
    """`data` as a `cls` message, if it is that message's one canonical
    encoding: no unknown fields at any depth, and byte for byte what
    deterministic serialization writes (field order, minimal varints,
    packed repeated fields, no defaults). CodecError otherwise."""
    pb = _parse(cls, data)
    pb.DiscardUnknownFields()
    if _serialize(pb) != bytes(data):
        raise CodecError(f"{what} is not the canonical encoding of {cls.DESCRIPTOR.full_name} (unknown fields, "
                         f"fields out of order or repeated, non-minimal integers or unpacked repeated fields)")
    return pb
