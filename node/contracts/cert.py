"""cert: certificates (证照) on the cert chain, their status, and the
verifications windows make (docs/design.md, "Certificates (证照链)").

The chain holds no field of a certificate, only `field_root`, the salted
Merkle root over its fields (node/identity/fields.py); the holder keeps the
certificate file and discloses one field at a time. A window checks a
disclosure against the root (`govchain cert verify`) and records that it
checked: which field and the result, never the value.

Methods (payload a JSON object; unknown fields are refused):
    issue               role "issuer"
        {"cert_id", "type", "holder_tag", "valid_from_ms", "valid_until_ms", "field_root"}
        cert_id 1-64 of letters, digits, . _ : - (unique on the chain); type
        a name such as "marriage-certificate"; holder_tag the holder's
        subject tag (64 hex); valid_until_ms null for no expiry, else after
        valid_from_ms; field_root 64 hex. The certificate starts "valid".
    set_status          role "issuer", only the department that issued it
        {"cert_id", "status", "superseded_by"?}   status one of STATUSES.
        valid <-> suspended; revoked and superseded are final; superseded
        needs superseded_by: another certificate of the same holder issued
        by the same department.
    record_verification role "window"
        {"cert_id", "field", "result"}   result one of RESULTS; no field value.
Queries:
    certificate    {"cert_id"} -> the record or null
    by_holder      {"tag", "after"?, "limit"?} -> {"items": [records in cert_id order], "more"}
    verifications  {"cert_id", "after"?, "limit"?} -> {"items": [records in commit order], "more"};
                   "after" is the last item's "seq"
Every record cites the catalog height at which its signer was read.
"""
from __future__ import annotations

import re

from node.contracts._apps import hex64, ident, load, milliseconds, one_of, page, signer, strict, tag_page
from node.core.canonical import canonical_json
from node.contracts.base import MethodContract, method, query
from node.identity.fields import FIELD_NAME_RE
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "cert"
VERSION = 1

STATUSES = ("valid", "suspended", "revoked", "superseded")
FINAL = ("revoked", "superseded")
RESULTS = ("match", "mismatch", "invalid-status")
TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
SEQ_RE = re.compile(r"[0-9]{20}/[0-9]{6}")
ISSUE_FIELDS = ("cert_id", "type", "holder_tag", "valid_from_ms", "valid_until_ms", "field_root")


def _cert_key(cert_id: str) -> bytes:
    return b"cert/" + cert_id.encode()


def _holder_prefix(tag: str) -> bytes:
    return b"holder/" + tag.encode() + b"/"


def _verification_prefix(cert_id: str) -> bytes:
    return b"verif/" + cert_id.encode() + b"/"


def _seq(value: object) -> bytes:
    if not isinstance(value, str) or not SEQ_RE.fullmatch(value):
        raise ContractError("field 'after' must be the \"seq\" of the last item of the previous page")
    return value.encode()


class CertContract(MethodContract):
    name = NAME
    version = VERSION

    @staticmethod
    def _existing(ctx, args: dict, field: str = "cert_id") -> dict:
        cert_id = ident(args, field)
        record = load(ctx.get, _cert_key(cert_id))
        if record is None:
            raise ContractError(f"no certificate {cert_id!r} on this chain")
        return record

    @staticmethod
    def _store(ctx: TxContext, record: dict) -> None:
        value = canonical_json(record)
        ctx.put(_cert_key(record["cert_id"]), value)
        ctx.put(_holder_prefix(record["holder_tag"]) + record["cert_id"].encode(), value)

    @method(role="issuer")
    def issue(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ISSUE_FIELDS)
        cert_id = ident(args, "cert_id")
        if ctx.get(_cert_key(cert_id)) is not None:
            raise ContractError(f"certificate {cert_id!r} is already issued")
        kind = args["type"]
        if not isinstance(kind, str) or not TYPE_RE.fullmatch(kind):
            raise ContractError("field 'type' must be 1-64 of a-z, 0-9, '.', '-', e.g. \"marriage-certificate\"")
        holder = hex64(args, "holder_tag", "the holder's subject tag (node/identity/oprf.py)")
        valid_from = milliseconds(args, "valid_from_ms")
        valid_until = None if args["valid_until_ms"] is None else milliseconds(args, "valid_until_ms")
        if valid_until is not None and valid_until <= valid_from:
            raise ContractError("field 'valid_until_ms' must be after valid_from_ms (or null: no expiry)")
        root = hex64(args, "field_root", "the Merkle root over the salted fields (node/identity/fields.py)")
        who, catalog_height = signer(ctx)
        record = {"cert_id": cert_id, "type": kind, "holder_tag": holder, "valid_from_ms": valid_from,
                  "valid_until_ms": valid_until, "field_root": root, "department": who.department,
                  "issuer": ctx.sender.hex(), "issued_height": ctx.height, "issued_at_ms": ctx.timestamp_ms,
                  "catalog_height": catalog_height, "status": "valid", "superseded_by": None,
                  "status_height": ctx.height, "status_at_ms": ctx.timestamp_ms,
                  "status_catalog_height": catalog_height}
        self._store(ctx, record)
        return canonical_json(record)

    @method(role="issuer")
    def set_status(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("cert_id", "status"), ("superseded_by",))
        record = self._existing(ctx, args)
        status = one_of(args, "status", STATUSES)
        who, catalog_height = signer(ctx)
        if who.department != record["department"]:
            raise ContractError(f"certificate {record['cert_id']!r} was issued by {record['department']}; only that "
                                f"department changes its status (the sender is {who.department}'s)")
        if record["status"] in FINAL:
            raise ContractError(f"certificate {record['cert_id']!r} is {record['status']} (at height "
                                f"{record['status_height']}), which is final")
        if status == record["status"]:
            raise ContractError(f"certificate {record['cert_id']!r} is already {status}")
        superseded_by = None
        if status == "superseded":
            successor = self._existing(ctx, args, "superseded_by")
            superseded_by = successor["cert_id"]
            if superseded_by == record["cert_id"] or successor["holder_tag"] != record["holder_tag"] \
                    or successor["department"] != record["department"]:
                raise ContractError("field 'superseded_by' must name another certificate of the same holder "
                                    "issued by the same department")
        elif "superseded_by" in args:
            raise ContractError("field 'superseded_by' goes only with status \"superseded\"")
        record.update(status=status, superseded_by=superseded_by, status_height=ctx.height,
                      status_at_ms=ctx.timestamp_ms, status_catalog_height=catalog_height)
        self._store(ctx, record)
        return canonical_json(record)

    @method(role="window")
    def record_verification(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("cert_id", "field", "result"))
        record = self._existing(ctx, args)
        field = args["field"]
        if not isinstance(field, str) or not FIELD_NAME_RE.fullmatch(field):
            raise ContractError("field 'field' must be a certificate field name (1-64 of a-z, 0-9, '_', '.', '-')")
        result = one_of(args, "result", RESULTS)
        who, catalog_height = signer(ctx)
        seq = f"{ctx.height:020d}/{ctx.index:06d}"
        verification = {"cert_id": record["cert_id"], "field": field, "result": result, "window": ctx.sender.hex(),
                        "department": who.department, "height": ctx.height, "at_ms": ctx.timestamp_ms,
                        "catalog_height": catalog_height, "seq": seq}
        value = canonical_json(verification)
        ctx.put(_verification_prefix(record["cert_id"]) + seq.encode(), value)
        return value

    @query
    def certificate(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("cert_id",))
        return load(ctx.get, _cert_key(ident(args, "cert_id")))

    @query
    def by_holder(self, ctx: QueryContext, args: dict) -> dict:
        return tag_page(ctx, args, _holder_prefix)

    @query
    def verifications(self, ctx: QueryContext, args: dict) -> dict:
        strict(args, ("cert_id",), ("after", "limit"))
        return page(ctx, _verification_prefix(ident(args, "cert_id")), args, after_key=_seq)


CONTRACT = CertContract
