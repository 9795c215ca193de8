"""catalog: the identity registry (departments, keys, roles), the data
catalog (items a department can answer) and standing sharing agreements
(docs/design.md, "Identities and permissions").

The platform checks every sender's role before a method runs (the role in
@method); this contract adds the ownership rules: a department changes only
its own items, accepts only agreements addressed to it, and approves a
change once.

Governance (role governance), k of n departments:
    propose  {"change": C}       C is one of
             {"type": "register_department", "id", "name", "validator": bool, "roles": [...]}
                 a new department, or new name/validator/roles of one (its
                 active keys must keep within the new roles);
             {"type": "add_key", "department", "key": "<64 hex>", "roles": [...]}
                 a key never registered before, roles within its department's;
             {"type": "revoke_key", "key"}      for good: a revoked key never returns;
             {"type": "set_roles", "key", "roles": [...]}
             The change id is the proposing transaction's id (hex), known to
             its sender before it commits. The proposer's department is the
             first approval; an identical change already pending is refused.
    approve  {"change": id}      one approval per department; the change
             applies in the transaction that brings `approvals` departments
             (genesis "governance") together, checked again against the state
             of that moment. A change that would leave fewer departments with
             an active governance key than `approvals` is refused: governance
             could never act again.
Items (role provider), only by the owning department:
    register_item {"item_id", "fields": [...], "answer_modes": ["predicate" | "fields"],
                   "consent_required": bool, "requester_roles": [...]}
    retire_item   {"item_id"}
Agreements (role governance), signed by both departments:
    propose_agreement {"department": B, "items": [...]}   the items are all
                 the proposer's or all B's; their owner is the provider, the
                 other the requester. Its id is the proposing transaction's id.
    accept_agreement  {"id"}   by B
    revoke_agreement  {"id"}   by either
Queries: department {"id"}, departments {}, key {"key"}, item {"item_id"},
items {"department"?, "after"?, "limit"?}, agreement {"id"}, agreements {"after"?, "limit"?},
pending_changes {}.

State (canonical JSON values; every record cites the catalog height it holds
since, 0 for genesis):
    governance            {"approvals": k}
    departments           [department ids, sorted]
    dept/<id>             {"id", "name", "validator", "roles", "since"}
    deptkeys/<id>         [active key hex of the department, sorted]
    key/<64 hex>          {"department", "roles", "status": "active"|"revoked", "since", "revoked_at"}
    change/<id>           {"id", "change", "digest", "proposed_at", "approvals": [{"department", "key", "height"}],
                           "status": "pending"|"applied", "applied_at"}
    pending               {change id: digest of its change}
    item/<item id>        {"item_id", "department", "fields", "answer_modes", "consent_required",
                           "requester_roles", "status": "active"|"retired", "since", "retired_at", "registered_by"}
    ditem/<dept>/<item id> "" (index: a department's items)
    agreement/<id>        {"id", "provider", "requester", "items", "proposed_by", "status":
                           "proposed"|"active"|"revoked", "since", "proposed_at", "accepted_at", "revoked_at",
                           "revoked_by"}
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable

from nacl.bindings import crypto_core_ed25519_is_valid_point

from node.core.canonical import canonical_json
from node.contracts._apps import load
from node.contracts.base import MethodContract, method, query, require_int, require_str
from node.identity.signers import ACTIVE, GOVERNANCE, REVOKED, ROLES, key_state_key, lookup_signer
from node.core.config import DEPARTMENT_RE
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "catalog"
VERSION = 1

DEPARTMENTS_MAX = 256
KEYS_PER_DEPARTMENT_MAX = 32  # active keys
DEPARTMENT_NAME_CHARS_MAX = 128
ITEM_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
FIELD_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
ITEM_FIELDS_MAX = 64
AGREEMENT_ITEMS_MAX = 64
PENDING_CHANGES_MAX = 256
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000
AGREEMENTS_LIMIT_MAX = 200  # an agreement is up to ~4.7 KB (64 item ids of 64): a page stays under RESULT_BYTES_MAX
ANSWER_MODES = ("fields", "predicate")
CHANGE_FIELDS = {
    "register_department": ("type", "id", "name", "validator", "roles"),
    "add_key": ("type", "department", "key", "roles"),
    "revoke_key": ("type", "key"),
    "set_roles": ("type", "key", "roles"),
}
_ID_RE = re.compile(r"[0-9a-f]{64}")

Get = Callable[[bytes], "bytes | None"]


# ---- decoding ---------------------------------------------------------------

def _exact(obj: object, allowed: tuple[str, ...], what: str) -> dict:
    if not isinstance(obj, dict):
        raise ContractError(f"{what} must be a JSON object")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ContractError(f"{what}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
    missing = [k for k in allowed if k not in obj]
    if missing:
        raise ContractError(f"{what}: field {missing[0]!r} is missing")
    return obj


def _names(value: object, what: str, *, allowed: tuple[str, ...] | None = None, pattern: re.Pattern | None = None,
           most: int) -> list[str]:
    """A non-empty list of distinct strings, sorted."""
    if not isinstance(value, list) or not 1 <= len(value) <= most:
        raise ContractError(f"{what} must be a list of 1..{most} strings")
    for name in value:
        if not isinstance(name, str) or (allowed is not None and name not in allowed) or (
                pattern is not None and not pattern.fullmatch(name)):
            rule = f"one of {', '.join(allowed)}" if allowed is not None else f"matching {pattern.pattern}"
            raise ContractError(f"{what}: {json.dumps(name)[:80]} is not {rule}")
    if len(set(value)) != len(value):
        raise ContractError(f"{what} lists a value twice")
    return sorted(value)


def _roles(value: object, what: str = "roles") -> list[str]:
    return _names(value, what, allowed=ROLES, most=len(ROLES))


def _department_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not DEPARTMENT_RE.fullmatch(value):
        raise ContractError(f"{what} must be a department id: lowercase letters, digits and '-' (1-63)")
    return value


def _public_key(value: object, what: str = "key") -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ContractError(f"{what} must be 64 hex characters (an Ed25519 public key)")
    if not crypto_core_ed25519_is_valid_point(bytes.fromhex(value)):
        raise ContractError(f"{what} is not a valid Ed25519 public key")
    return value.lower()


def _record_id(args: dict, field: str) -> str:
    value = args.get(field)
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ContractError(f"field {field!r} must be 64 lowercase hex characters (a transaction id)")
    return value


def _item_id(value: object, what: str = "item_id") -> str:
    if not isinstance(value, str) or not ITEM_ID_RE.fullmatch(value):
        raise ContractError(f"{what} must match {ITEM_ID_RE.pattern}")
    return value


def parse_change(raw: object) -> dict[str, Any]:
    """One governance change, checked and normalised (roles sorted, keys in lowercase hex)."""
    if not isinstance(raw, dict) or raw.get("type") not in CHANGE_FIELDS:
        raise ContractError(f"change must be an object whose type is one of {', '.join(CHANGE_FIELDS)}")
    kind = raw["type"]
    change = dict(_exact(raw, CHANGE_FIELDS[kind], f"change {kind}"))
    if kind == "register_department":
        change["id"] = _department_id(change["id"], "change.id")
        name = change["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= DEPARTMENT_NAME_CHARS_MAX:
            raise ContractError(f"change.name must be a string of 1..{DEPARTMENT_NAME_CHARS_MAX} characters")
        if not isinstance(change["validator"], bool):
            raise ContractError("change.validator must be true or false")
    if kind == "add_key":
        change["department"] = _department_id(change["department"], "change.department")
    if "key" in change:
        change["key"] = _public_key(change["key"], "change.key")
    if "roles" in change:
        change["roles"] = _roles(change["roles"], "change.roles")
    return change


# ---- state ----------------------------------------------------------------------

class _Overlay:
    """Writes kept apart until `flush`: a change is checked by applying it here."""

    def __init__(self, get: Get) -> None:
        self._get = get
        self.writes: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.writes[key] if key in self.writes else self._get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def flush(self, ctx: TxContext) -> None:
        for key, value in self.writes.items():
            ctx.put(key, value)


def _store(state, key: bytes, value: Any) -> None:
    state.put(key, canonical_json(value))


def _dept_key(department: str) -> bytes:
    return b"dept/" + department.encode()


def _dept_keys_key(department: str) -> bytes:
    return b"deptkeys/" + department.encode()


def _key_key(key_hex: str) -> bytes:
    return key_state_key(bytes.fromhex(key_hex))


def _approvals_needed(get: Get) -> int:
    return load(get, b"governance")["approvals"]


def _governance_departments(get: Get) -> int:
    """Departments holding at least one active governance key."""
    count = 0
    for department in load(get, b"departments") or []:
        keys = load(get, _dept_keys_key(department)) or []
        count += any(GOVERNANCE in load(get, _key_key(k))["roles"] for k in keys)
    return count


def apply_change(state: _Overlay, change: dict, height: int) -> None:
    """Check `change` against `state` and write it there; ContractError
    when it cannot apply (the reason)."""
    get, kind = state.get, change["type"]
    if kind == "register_department":
        department = change["id"]
        current = load(get, _dept_key(department))
        if current is None:
            departments = load(get, b"departments") or []
            if len(departments) >= DEPARTMENTS_MAX:
                raise ContractError(f"the catalog holds {DEPARTMENTS_MAX} departments, the most it can (DEPARTMENTS_MAX)")
            _store(state, b"departments", sorted([*departments, department]))
            _store(state, _dept_keys_key(department), [])
        else:
            for k in load(get, _dept_keys_key(department)):
                outside = sorted(set(load(get, _key_key(k))["roles"]) - set(change["roles"]))
                if outside:
                    raise ContractError(f"key {k[:16]} of {department} holds roles [{', '.join(outside)}] the "
                                        f"department would no longer have; change or revoke it first")
        _store(state, _dept_key(department), {"id": department, "name": change["name"],
                                              "validator": change["validator"], "roles": change["roles"],
                                              "since": height})
        return
    if kind == "add_key":
        department, key_hex = change["department"], change["key"]
        record = load(get, _dept_key(department))
        if record is None:
            raise ContractError(f"department {department} is not registered")
        existing = load(get, _key_key(key_hex))
        if existing is not None:
            raise ContractError(f"key {key_hex[:16]} is already registered (to {existing['department']}, "
                                f"{existing['status']}); a key is registered once")
        _check_within(change["roles"], record)
        keys = load(get, _dept_keys_key(department))
        if len(keys) >= KEYS_PER_DEPARTMENT_MAX:
            raise ContractError(f"department {department} has {KEYS_PER_DEPARTMENT_MAX} active keys, the most "
                                f"it can (KEYS_PER_DEPARTMENT_MAX); revoke one first")
        _store(state, _dept_keys_key(department), sorted([*keys, key_hex]))
        _store(state, _key_key(key_hex), {"department": department, "roles": change["roles"], "status": ACTIVE,
                                          "since": height, "revoked_at": None})
        return
    key_hex = change["key"]
    record = load(get, _key_key(key_hex))
    if record is None:
        raise ContractError(f"key {key_hex[:16]} is not registered")
    if record["status"] != ACTIVE:
        raise ContractError(f"key {key_hex[:16]} was revoked at catalog height {record['revoked_at']}")
    department = record["department"]
    if kind == "revoke_key":
        _store(state, _dept_keys_key(department), [k for k in load(get, _dept_keys_key(department)) if k != key_hex])
        _store(state, _key_key(key_hex), {**record, "status": REVOKED, "revoked_at": height})
    else:  # set_roles
        _check_within(change["roles"], load(get, _dept_key(department)))
        _store(state, _key_key(key_hex), {**record, "roles": change["roles"], "since": height})
    needed, left = _approvals_needed(get), _governance_departments(get)
    if left < needed:
        raise ContractError(f"it would leave {left} department(s) with an active governance key, fewer than the "
                            f"{needed} approvals a change needs: governance could never act again")


def _check_within(roles: list[str], department: dict) -> None:
    outside = sorted(set(roles) - set(department["roles"]))
    if outside:
        raise ContractError(f"roles [{', '.join(outside)}] are not roles of department {department['id']} "
                            f"([{', '.join(department['roles'])}])")


def _open_record(ctx: TxContext, args: dict, field: str, kind: str, *, closed: str) -> dict:
    """The `kind` record (change, agreement) whose id is args[field]; refused
    when there is none, or when it is `closed` (its `<closed>_at` says when)."""
    record_id = _record_id(_exact(args, (field,), "payload"), field)
    record = load(ctx.get, f"{kind}/{record_id}".encode())
    if record is None:
        raise ContractError(f"no {kind} {record_id}")
    if record["status"] == closed:
        raise ContractError(f"{kind} {record_id} was already {closed} at catalog height {record[closed + '_at']}")
    return record


def _digest(change: dict) -> str:
    return hashlib.sha256(b"govchain:v1:catalog-change:" + canonical_json(change)).hexdigest()


# ---- the contract ------------------------------------------------------------------

class CatalogContract(MethodContract):
    name = NAME
    version = VERSION

    # ---- genesis ----

    def genesis_writes(self, section: object) -> list[tuple[bytes, bytes]]:
        """The genesis app_state section: {"departments": [{"id", "name",
        "validator", "roles", "keys": [{"key", "roles"}]}], "governance":
        {"approvals": k}}, applied as register_department and add_key
        changes at height 0, so it obeys the rules governance obeys later."""
        section = _exact(section, ("departments", "governance"), "catalog section")
        governance = _exact(section["governance"], ("approvals",), "governance")
        approvals = require_int(governance, "approvals", low=1, high=DEPARTMENTS_MAX)
        departments = section["departments"]
        if not isinstance(departments, list) or not 1 <= len(departments) <= DEPARTMENTS_MAX:
            raise ContractError(f"departments must be a list of 1..{DEPARTMENTS_MAX} departments")
        state = _Overlay(lambda key: None)
        _store(state, b"governance", {"approvals": approvals})
        for i, raw in enumerate(departments):
            where = f"departments[{i}]"
            entry = _exact(raw, ("id", "name", "validator", "roles", "keys"), where)
            if isinstance(entry["id"], str) and load(state.get, _dept_key(entry["id"])) is not None:
                raise ContractError(f"{where}: department {entry['id']} is listed twice")
            keys = entry["keys"]
            if not isinstance(keys, list) or len(keys) > KEYS_PER_DEPARTMENT_MAX:
                raise ContractError(f"{where}.keys must be a list of at most {KEYS_PER_DEPARTMENT_MAX} keys")
            changes = [{"type": "register_department", **{k: entry[k] for k in ("id", "name", "validator", "roles")}}]
            changes += [{"type": "add_key", "department": entry["id"],
                         **_exact(key, ("key", "roles"), f"{where}.keys[{j}]")} for j, key in enumerate(keys)]
            for change in changes:
                try:
                    apply_change(state, parse_change(change), 0)
                except ContractError as exc:
                    raise ContractError(f"{where}: {exc}") from None
        holders = _governance_departments(state.get)
        if holders < approvals:
            raise ContractError(f"governance.approvals is {approvals}, but only {holders} department(s) hold a "
                                f"governance key: no change could ever be approved")
        return sorted(state.writes.items())

    # ---- helpers ----

    @staticmethod
    def _department(ctx: TxContext) -> str:
        """The sender's department (the platform checked the key is active and holds the method's role)."""
        signer = lookup_signer(lambda contract, key: ctx.get(key), ctx.sender)
        if signer is None:  # only if the platform check did not run
            raise ContractError("sender is not registered in the catalog")
        return signer.department

    # ---- governance ----

    @method(role=GOVERNANCE)
    def propose(self, ctx: TxContext, args: dict) -> bytes:
        change = parse_change(_exact(args, ("change",), "payload")["change"])
        digest = _digest(change)
        pending = load(ctx.get, b"pending") or {}
        for other, other_digest in sorted(pending.items()):
            if other_digest == digest:
                raise ContractError(f"an identical change is pending as {other}; approve it instead")
        if len(pending) >= PENDING_CHANGES_MAX:
            raise ContractError(f"{PENDING_CHANGES_MAX} changes are pending, the most the catalog keeps "
                                f"(PENDING_CHANGES_MAX); approve them first")
        change_id = ctx.tx_id.hex()
        record = {"id": change_id, "change": change, "digest": digest, "proposed_at": ctx.height,
                  "approvals": [], "status": "pending", "applied_at": None}
        return self._approve(ctx, record, pending)

    @method(role=GOVERNANCE)
    def approve(self, ctx: TxContext, args: dict) -> bytes:
        record = _open_record(ctx, args, "change", "change", closed="applied")
        return self._approve(ctx, record, load(ctx.get, b"pending") or {})

    def _approve(self, ctx: TxContext, record: dict, pending: dict) -> bytes:
        """Add the sender's department to the change's approvals; apply the
        change when they reach the number governance needs."""
        department = self._department(ctx)
        change_id = record["id"]
        if any(a["department"] == department for a in record["approvals"]):
            raise ContractError(f"department {department} already approved change {change_id}")
        record["approvals"] = sorted([*record["approvals"], {"department": department, "key": ctx.sender.hex(),
                                                              "height": ctx.height}], key=lambda a: a["department"])
        needed = _approvals_needed(ctx.get)
        state = _Overlay(ctx.get)
        try:
            apply_change(state, record["change"], ctx.height)
        except ContractError as exc:
            if len(record["approvals"]) == 1:  # proposing: the change is the transaction's own
                raise
            raise ContractError(f"change {change_id} cannot apply: {exc}") from None
        if len(record["approvals"]) >= needed:
            state.flush(ctx)
            record.update(status="applied", applied_at=ctx.height)
            pending.pop(change_id, None)
        else:
            pending[change_id] = record["digest"]
        _store(ctx, b"change/" + change_id.encode(), record)
        _store(ctx, b"pending", pending)
        return canonical_json({"change": change_id, "status": record["status"],
                               "approvals": len(record["approvals"]), "needed": needed})

    # ---- items ----

    @method(role="provider")
    def register_item(self, ctx: TxContext, args: dict) -> bytes:
        args = _exact(args, ("item_id", "fields", "answer_modes", "consent_required", "requester_roles"), "payload")
        item_id = _item_id(args["item_id"])
        department = self._department(ctx)
        current = load(ctx.get, b"item/" + item_id.encode())
        if current is not None and current["department"] != department:
            raise ContractError(f"item {item_id} belongs to {current['department']}; a department registers "
                                f"only its own items")
        if not isinstance(args["consent_required"], bool):
            raise ContractError("consent_required must be true or false")
        record = {"item_id": item_id, "department": department,
                  "fields": _names(args["fields"], "fields", pattern=FIELD_RE, most=ITEM_FIELDS_MAX),
                  "answer_modes": _names(args["answer_modes"], "answer_modes", allowed=ANSWER_MODES, most=2),
                  "consent_required": args["consent_required"],
                  "requester_roles": _roles(args["requester_roles"], "requester_roles"),
                  "status": "active", "since": ctx.height, "retired_at": None, "registered_by": ctx.sender.hex()}
        _store(ctx, b"item/" + item_id.encode(), record)
        ctx.put(f"ditem/{department}/{item_id}".encode(), b"")
        return canonical_json({"item_id": item_id, "since": ctx.height})

    @method(role="provider")
    def retire_item(self, ctx: TxContext, args: dict) -> bytes:
        item_id = _item_id(_exact(args, ("item_id",), "payload")["item_id"])
        record = load(ctx.get, b"item/" + item_id.encode())
        if record is None:
            raise ContractError(f"no item {item_id}")
        department = self._department(ctx)
        if record["department"] != department:
            raise ContractError(f"item {item_id} belongs to {record['department']}; a department retires "
                                f"only its own items")
        if record["status"] != "active":
            raise ContractError(f"item {item_id} was retired at catalog height {record['retired_at']}")
        _store(ctx, b"item/" + item_id.encode(), {**record, "status": "retired", "retired_at": ctx.height})
        return b""

    # ---- agreements ----

    @method(role=GOVERNANCE)
    def propose_agreement(self, ctx: TxContext, args: dict) -> bytes:
        args = _exact(args, ("department", "items"), "payload")
        department = self._department(ctx)
        other = _department_id(args["department"], "department")
        if other == department:
            raise ContractError("an agreement is between two departments; name the other one")
        if load(ctx.get, _dept_key(other)) is None:
            raise ContractError(f"department {other} is not registered")
        items = _names(args["items"], "items", pattern=ITEM_ID_RE, most=AGREEMENT_ITEMS_MAX)
        owners = set()
        for item_id in items:
            item = load(ctx.get, b"item/" + item_id.encode())
            if item is None or item["status"] != "active":
                raise ContractError(f"item {item_id} is not an active catalog item")
            owners.add(item["department"])
        if len(owners) != 1 or not owners <= {department, other}:
            raise ContractError(f"the items must all belong to {department} or all to {other} "
                                f"(they belong to {', '.join(sorted(owners))})")
        provider = owners.pop()
        agreement_id = ctx.tx_id.hex()
        _store(ctx, b"agreement/" + agreement_id.encode(), {
            "id": agreement_id, "provider": provider, "requester": other if provider == department else department,
            "items": items, "proposed_by": department, "status": "proposed", "since": ctx.height,
            "proposed_at": ctx.height, "accepted_at": None, "revoked_at": None, "revoked_by": None})
        return canonical_json({"agreement": agreement_id})

    def _agreement(self, ctx: TxContext, args: dict) -> tuple[dict, str]:
        return _open_record(ctx, args, "id", "agreement", closed="revoked"), self._department(ctx)

    @method(role=GOVERNANCE)
    def accept_agreement(self, ctx: TxContext, args: dict) -> bytes:
        record, department = self._agreement(ctx, args)
        other = record["requester"] if record["proposed_by"] == record["provider"] else record["provider"]
        if department != other:
            raise ContractError(f"only {other} accepts agreement {record['id']}")
        if record["status"] == "active":
            raise ContractError(f"agreement {record['id']} was already accepted at catalog height "
                                f"{record['accepted_at']}")
        for item_id in record["items"]:
            if load(ctx.get, b"item/" + item_id.encode())["status"] != "active":
                raise ContractError(f"item {item_id} was retired since the agreement was proposed")
        _store(ctx, b"agreement/" + record["id"].encode(),
               {**record, "status": "active", "since": ctx.height, "accepted_at": ctx.height})
        return b""

    @method(role=GOVERNANCE)
    def revoke_agreement(self, ctx: TxContext, args: dict) -> bytes:
        record, department = self._agreement(ctx, args)
        if department not in (record["provider"], record["requester"]):
            raise ContractError(f"agreement {record['id']} is between {record['provider']} and "
                                f"{record['requester']}; only they revoke it")
        _store(ctx, b"agreement/" + record["id"].encode(), {**record, "status": "revoked", "since": ctx.height,
                                                             "revoked_at": ctx.height, "revoked_by": department})
        return b""

    # ---- queries ----

    @query
    def department(self, ctx: QueryContext, args: dict) -> dict:
        department = _department_id(require_str(args, "id"), "id")
        record = load(ctx.get, _dept_key(department))
        keys = load(ctx.get, _dept_keys_key(department)) or []
        return {"found": record is not None, "department": record,
                "keys": [{"key": k, **load(ctx.get, _key_key(k))} for k in keys]}

    @query
    def departments(self, ctx: QueryContext, args: dict) -> dict:
        return {"departments": [load(ctx.get, _dept_key(d)) for d in load(ctx.get, b"departments") or []],
                "approvals": _approvals_needed(ctx.get) if ctx.get(b"governance") is not None else None}

    @query
    def key(self, ctx: QueryContext, args: dict) -> dict:
        key_hex = _public_key(require_str(args, "key"))
        record = load(ctx.get, _key_key(key_hex))
        return {"found": record is not None, "key": record}

    @query
    def item(self, ctx: QueryContext, args: dict) -> dict:
        record = load(ctx.get, b"item/" + _item_id(require_str(args, "item_id")).encode())
        return {"found": record is not None, "item": record}

    @query
    def items(self, ctx: QueryContext, args: dict) -> dict:
        limit = require_int(args, "limit", low=1, high=LIST_LIMIT_MAX, default=LIST_LIMIT_DEFAULT)
        after = _item_id(args["after"], "after") if args.get("after") is not None else None
        if args.get("department") is not None:
            prefix = f"ditem/{_department_id(args['department'], 'department')}/".encode()
        else:
            prefix = b"item/"
        found = ctx.scan(prefix, after=prefix + after.encode() if after else None, limit=limit + 1)
        ids = [k[len(prefix):] for k, _ in found[:limit]]
        return {"items": [load(ctx.get, b"item/" + i) for i in ids], "more": len(found) > limit}

    @query
    def agreements(self, ctx: QueryContext, args: dict) -> dict:
        """Every agreement, proposed, active or revoked, in id order (transaction hashes: not chronological):
        who may ask whom without consent is public (docs/design.md, "Catalog")."""
        limit = require_int(args, "limit", low=1, high=AGREEMENTS_LIMIT_MAX, default=LIST_LIMIT_DEFAULT)
        prefix = b"agreement/"
        after = prefix + _record_id(args, "after").encode() if args.get("after") is not None else None
        found = ctx.scan(prefix, after=after, limit=limit + 1)
        return {"agreements": [json.loads(v) for _, v in found[:limit]], "more": len(found) > limit}

    @query
    def agreement(self, ctx: QueryContext, args: dict) -> dict:
        record = load(ctx.get, b"agreement/" + _record_id(args, "id").encode())
        return {"found": record is not None, "agreement": record}

    @query
    def pending_changes(self, ctx: QueryContext, args: dict) -> dict:
        pending = load(ctx.get, b"pending") or {}
        return {"changes": [load(ctx.get, b"change/" + i.encode()) for i in sorted(pending)],
                "approvals": _approvals_needed(ctx.get) if ctx.get(b"governance") is not None else None}


CONTRACT = CatalogContract
