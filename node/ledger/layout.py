"""Where everything lives in a chain's LevelDB store: the one place that
knows the key layout (docs/design.md, "Ledger key layout").

One prefix byte, then big-endian fixed-width integers, so LevelDB's bytewise
order is height order and a range over heights is a plain iterator:

    M<name>                   meta: chain id, genesis hash, format, tip height, sync counter
    B<u64 height>             committed block (proposal + commit certificate)
    H<u64 height>             block header (holds the state root)
    h<block hash>             -> u64 height
    T<tx id>                  -> u64 height + u32 index of its first (non-DUPLICATE) occurrence
    R<u64 height><u32 index>  receipt of every transaction, DUPLICATEs included
    S<u8 len><contract><key>  application state, one namespace per contract
    V<u8 len><contract><u32 len><key><u64 height>
                              state version: 1 + value, or 0 (deleted), as block `height` wrote it
                              (docs/design.md, "Cross-chain reads")
    P<record key>             consensus durable record (Ready.persist)
    C<u64 seq>                stable checkpoint (with its 2f+1 proof) per checkpoint seq

A consensus record key is a short prefix plus, where there is one, an 8-byte
big-endian seq (no prefix is a prefix of another): `view`, `ckpt`,
`pp/<u64 seq>` (accepted PrePrepare), `pc/<u64 seq>` (prepared certificate).
"""
from __future__ import annotations

from consensus.events import RecordKey
from node.core.codec import CodecError, record_kind
from node.ledger.storage import key, u64

META = b"M"
BLOCK = b"B"
HEADER = b"H"
HASH = b"h"
TX = b"T"
RECEIPT = b"R"
STATE = b"S"
VERSION = b"V"
RECORD = b"P"
CHECKPOINT = b"C"

META_CHAIN = META + b"chain_id"
META_GENESIS = META + b"genesis_hash"
META_FORMAT = META + b"format"
META_TIP = META + b"tip"
META_SYNC = META + b"sync"

_RECORD_VIEW = b"view"
_RECORD_CHECKPOINT = b"ckpt"
_RECORD_SEQ = {"pre_prepare": b"pp/", "prepared": b"pc/"}
_RECORD_SEQ_KINDS = {prefix: kind for kind, prefix in _RECORD_SEQ.items()}


def block_key(height: int) -> bytes:
    return key(BLOCK, height)


def header_key(height: int) -> bytes:
    return key(HEADER, height)


def checkpoint_key(seq: int) -> bytes:
    return key(CHECKPOINT, seq)


def tx_location(height: int, index: int) -> bytes:
    """The value of a T entry: where the transaction's receipt is."""
    return u64(height) + index.to_bytes(4, "big")


def receipt_key(location: bytes) -> bytes:
    return RECEIPT + location


def state_key(contract: str, state_key_in_contract: bytes) -> bytes:
    """Where a contract's state key lives in the store (one namespace per contract)."""
    name = contract.encode()
    if not 0 < len(name) < 256:
        raise ValueError(f"bad contract name {contract!r}")
    return STATE + bytes([len(name)]) + name + state_key_in_contract


def version_prefix(contract: str, state_key_in_contract: bytes) -> bytes:
    """V<u8 len><contract><u32 len><key>: every version of one state key; u64(height) follows."""
    return (VERSION + state_key(contract, b"")[1:] + len(state_key_in_contract).to_bytes(4, "big")
            + state_key_in_contract)


def record_key(record: RecordKey) -> bytes:
    """The store key of one consensus durable record (CodecError for a key
    the core never writes)."""
    kind = record_kind(record)
    if kind == "view":
        return RECORD + _RECORD_VIEW
    if kind == "checkpoint":
        return RECORD + _RECORD_CHECKPOINT
    return RECORD + _RECORD_SEQ[kind] + u64(record[1])


def record_key_from(stored: bytes) -> RecordKey:
    """Inverse of record_key; CodecError for anything else."""
    data = bytes(stored)
    if data[:1] != RECORD:
        raise CodecError(f"not a consensus record key: {data[:40]!r}")
    data = data[1:]
    if data == _RECORD_VIEW:
        return ("view",)
    if data == _RECORD_CHECKPOINT:
        return ("checkpoint",)
    kind = _RECORD_SEQ_KINDS.get(data[:3])
    if kind is not None and len(data) == 3 + 8:
        return (kind, int.from_bytes(data[3:], "big"))
    raise CodecError(f"not a consensus record key: {data[:40]!r}")
