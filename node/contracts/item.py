"""item: service items and their cases, the item chain (事项链)
(docs/design.md, "Service items and cases").

A service item is what a department decides for citizens (an electricity
transfer, a benefit): the catalog items it needs from other departments,
each as a predicate or one field, and a CEL decision rule over them
(node/core/rules.py). A case is one citizen's application: it pins the
rule's hash when it opens, gathers evidence (what the verification queries
attested, never the answers), and gets a decision and a notice.

Methods (payloads JSON objects, strict schemas):
    register_item  role governance: {"item_id", "title", "inputs", "rule", "auto_approve", "notice_template"}
        inputs: 1..INPUTS_MAX of {"name", "provider", "catalog_item", "predicate": {...}} or
                {"name", "provider", "catalog_item", "field"}, each optionally with "if_missing"
                (a boolean, integer, string or null used when the provider has no record).
                Each catalog item must be active on the catalog chain, the provider's, and
                answer in that mode (the field among its fields). The rule must compile over the
                input names (node/core/rules.py), else the registration is refused.
        The sender's department is the competent department; an item id is registered once.
    update_item    role governance, the competent department: {"item_id", and any of "title",
                   "inputs", "rule", "auto_approve", "notice_template", "status" ("active"|"retired")}
                   A new rule document gets a new hash; open cases keep the hash they started with.
    open_case      role citizen or window: {"case_id", "item_id", "tag", "authn_event"?}
                   The citizen sends it from their app key without "authn_event": the key's authn
                   binding is for `tag` and in force at the block time. A window key of the
                   competent department sends it citing "authn_event" (an authn event for that tag
                   in force at the block time). The case pins the item's current rule hash.
    record_evidence role provider, the competent department: {"case_id", "evidence": [{"input",
                   "request_digest", "answer_commitment", "attestation", "provider_key",
                   "log_tx_id", "log_height"}]}  once per case, each input at most once; every
                   attestation must verify with the provider's catalog key (role provider).
    decide         role provider, the competent department: {"case_id", "outcome", "reason"}
                   outcome approved or refused needs evidence for every input and an
                   auto-approve rule; manual review is always allowed. Once per case.
    review         role governance, the competent department: {"case_id", "outcome", "reason"} an
                   officer's approved/refused on a case in manual review.
    record_notice  role provider, the competent department: {"case_id", "notice_digest"} once, after
                   the decision (the digest of the sealed notice the push service sent).
Queries: item {"item_id"}, items {"department"?, "after"?, "limit"?}, rule {"rule_hash"} -> the rule
document, case {"case_id"}, cases {"tag", "after"?, "limit"?} (a tag's cases, by case id).

State (canonical JSON): item/<id>, ditem/<department>/<id> (the same record), rule/<hash>
{"rule", "inputs", "auto_approve"}, case/<id>, tag/<tag>/<case id> (the same record).
Every record cites the catalog height its signer was read at.
"""
from __future__ import annotations

import hashlib
import json

from node.contracts._apps import (
    bound_to, hex64, id_cursor, ident, load, one_of, page, signer, strict, tag_page, tag_prefix, window_signer,
)
from node.core.canonical import canonical_json
from node.contracts.base import MethodContract, method, query, require_str
from node.identity.signers import CATALOG_CHAIN, CATALOG_CONTRACT, lookup_signer
from node.core import attest, rules
from node.core.config import DEPARTMENT_RE
from node.identity.citizens import AUTHN_CHAIN, AUTHN_CONTRACT, CITIZEN
from node.ledger.execution import ContractError, TxContext
from node.ledger.query import QueryContext

NAME = "item"
VERSION = 1

INPUTS_MAX = 16
TITLE_CHARS_MAX = 128
PREDICATE_BYTES_MAX = 4096
REASON_CHARS_MAX = 200
ITEM_FIELDS = ("item_id", "title", "inputs", "rule", "auto_approve", "notice_template")
INPUT_FIELDS = ("name", "provider", "catalog_item")
EVIDENCE_FIELDS = ("input", "request_digest", "answer_commitment", "attestation", "provider_key", "log_tx_id",
                   "log_height")
FINAL = (rules.APPROVED, rules.REFUSED)


def _item_key(item_id: str) -> bytes:
    return b"item/" + item_id.encode()


def _case_key(case_id: str) -> bytes:
    return b"case/" + case_id.encode()


def _rule_key(rule_hash: str) -> bytes:
    return b"rule/" + rule_hash.encode()


def _text(args: dict, field: str, most: int) -> str:
    value = require_str(args, field)
    if len(value) > most or not value.isprintable():
        raise ContractError(f"field {field!r} must be 1-{most} printable characters")
    return value


def _scalar(value: object, what: str) -> object:
    if value is None or isinstance(value, (bool, int)) or (isinstance(value, str) and
                                                            len(value) <= rules.INPUT_CHARS_MAX):
        return value
    raise ContractError(f"{what} must be a boolean, an integer, a string or null")


class ItemContract(MethodContract):
    name = NAME
    version = VERSION

    # ---- service items ----

    @method(role="governance")
    def register_item(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ITEM_FIELDS)
        item_id = ident(args, "item_id")
        if (current := load(ctx.get, _item_key(item_id))) is not None:
            raise ContractError(f"service item {item_id!r} is already registered by {current['department']} "
                                f"(at height {current['height']}); change it with update_item")
        who, catalog_height = signer(ctx)
        record = {"item_id": item_id, "department": who.department, "status": "active"}
        return self._save_item(ctx, record, args, catalog_height)

    @method(role="governance")
    def update_item(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("item_id",), (*ITEM_FIELDS[1:], "status"))
        record = self._own_item(ctx, ident(args, "item_id"), "changes")
        _, catalog_height = signer(ctx)
        if "status" in args:
            record["status"] = one_of(args, "status", ("active", "retired"))
        merged = {name: args.get(name, record[name]) for name in ITEM_FIELDS}
        return self._save_item(ctx, record, merged, catalog_height)

    def _save_item(self, ctx: TxContext, record: dict, args: dict, catalog_height: int) -> bytes:
        inputs = self._inputs(ctx, args["inputs"])
        if not isinstance(args["auto_approve"], bool):
            raise ContractError("field 'auto_approve' must be true or false")
        document = {"rule": args["rule"], "inputs": inputs, "auto_approve": args["auto_approve"]}
        try:
            rules.compile_rule(args["rule"], [spec["name"] for spec in inputs])
        except rules.RuleError as exc:
            raise ContractError(f"field 'rule': {exc}") from None
        rule_hash = rules.rule_hash(document)
        if ctx.get(_rule_key(rule_hash)) is None:
            ctx.put(_rule_key(rule_hash), canonical_json(document))
        record.update({"title": _text(args, "title", TITLE_CHARS_MAX), "inputs": inputs, "rule": args["rule"],
                       "auto_approve": args["auto_approve"], "rule_hash": rule_hash,
                       "notice_template": ident(args, "notice_template"), "height": ctx.height,
                       "by": ctx.sender.hex(), "catalog_height": catalog_height})
        value = canonical_json(record)
        ctx.put(_item_key(record["item_id"]), value)
        ctx.put(f"ditem/{record['department']}/{record['item_id']}".encode(), value)
        return value

    @staticmethod
    def _inputs(ctx: TxContext, raw: object) -> list[dict]:
        if not isinstance(raw, list) or not 1 <= len(raw) <= INPUTS_MAX:
            raise ContractError(f"field 'inputs' must be a list of 1-{INPUTS_MAX} inputs")
        inputs, names = [], set()
        for i, spec in enumerate(raw):
            where = f"inputs[{i}]"
            if not isinstance(spec, dict):
                raise ContractError(f"{where} must be an object")
            mode = "predicate" if "predicate" in spec else "fields"
            strict(spec, (*INPUT_FIELDS, "predicate" if mode == "predicate" else "field"), ("if_missing",))
            name = spec["name"]
            if not isinstance(name, str) or not rules.INPUT_NAME_RE.fullmatch(name) or name in names:
                raise ContractError(f"{where}.name must be a distinct input name: 1-64 of a-z, 0-9, _ starting "
                                    "with a letter")
            names.add(name)
            provider = spec["provider"]
            if not isinstance(provider, str) or not DEPARTMENT_RE.fullmatch(provider):
                raise ContractError(f"{where}.provider must be a department id")
            item_id = ident(spec, "catalog_item")
            raw_item = ctx.read(CATALOG_CHAIN, CATALOG_CONTRACT, b"item/" + item_id.encode())
            item = None if raw_item is None else json.loads(raw_item)
            problem = ("not registered" if item is None else item["status"] if item["status"] != "active"
                       else None if item["department"] == provider else f"{item['department']}'s, not {provider}'s")
            if problem is not None:
                raise ContractError(f"{where}: catalog item {item_id!r} is {problem} on the catalog chain (height "
                                    f"{ctx.read_height(CATALOG_CHAIN)})")
            if mode not in item["answer_modes"]:
                raise ContractError(f"{where}: catalog item {item_id!r} does not answer in mode {mode}")
            clean = {"name": name, "provider": provider, "catalog_item": item_id}
            if mode == "predicate":
                predicate = spec["predicate"]
                if not isinstance(predicate, dict) or len(canonical_json(predicate)) > PREDICATE_BYTES_MAX:
                    raise ContractError(f"{where}.predicate must be a predicate object of at most "
                                        f"{PREDICATE_BYTES_MAX} bytes (docs/design.md, \"Data-source adapters\")")
                clean["predicate"] = predicate
            else:
                field = require_str(spec, "field")
                if field not in item["fields"]:
                    raise ContractError(f"{where}.field {field[:64]!r} is not a field of catalog item {item_id!r}")
                clean["field"] = field
            if "if_missing" in spec:
                clean["if_missing"] = _scalar(spec["if_missing"], f"{where}.if_missing")
            inputs.append(clean)
        return inputs

    @staticmethod
    def _item(ctx: TxContext, item_id: str) -> dict:
        record = load(ctx.get, _item_key(item_id))
        if record is None:
            raise ContractError(f"no service item {item_id!r}")
        return record

    def _own_item(self, ctx: TxContext, item_id: str, what: str) -> dict:
        record = self._item(ctx, item_id)
        who, _ = signer(ctx)
        if who.department != record["department"]:
            raise ContractError(f"service item {item_id!r} is {record['department']}'s; only that department "
                                f"{what} it (the sender is {who.department}'s)")
        return record

    # ---- cases ----

    @method(role=(CITIZEN, "window"))
    def open_case(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("case_id", "item_id", "tag"), ("authn_event",))
        case_id = ident(args, "case_id")
        if (found := load(ctx.get, _case_key(case_id))) is not None:
            raise ContractError(f"case {case_id!r} is already open (at height {found['height']})")
        tag = hex64(args, "tag", "a subject tag (node/identity/oprf.py)")
        item_id = ident(args, "item_id")
        if "authn_event" in args:
            item, opened = self._window_opens(ctx, item_id, ident(args, "authn_event"), tag)
        else:
            binding = bound_to(ctx, tag, "open a case without citing 'authn_event'")
            item = self._item(ctx, item_id)
            opened = {"by": CITIZEN, "key": ctx.sender.hex(), "authn_event": binding["event_id"]}
        if item["status"] != "active":
            raise ContractError(f"service item {item['item_id']!r} is {item['status']}")
        opened.update(height=ctx.height, at_ms=ctx.timestamp_ms, authn_height=ctx.read_height(AUTHN_CHAIN))
        case = {"case_id": case_id, "item_id": item["item_id"], "department": item["department"], "tag": tag,
                "rule_hash": item["rule_hash"], "status": "open", "opened": opened,
                "height": ctx.height, "evidence": None, "decision": None, "review": None, "notice": None}
        return self._store(ctx, case)

    def _window_opens(self, ctx: TxContext, item_id: str, event_id: str, tag: str) -> tuple[dict, dict]:
        """A window officer opens a case: a window key of the item's competent
        department, citing an authn event for `tag` in force at the block time."""
        window_signer(ctx, "a case is opened", "opens their own case")
        item = self._own_item(ctx, item_id, "opens cases of")
        raw = ctx.read(AUTHN_CHAIN, AUTHN_CONTRACT, b"event/" + event_id.encode())
        event = None if raw is None else json.loads(raw)
        if event is None or event["tag"] != tag:
            raise ContractError(f"authn event {event_id!r} is "
                                f"{'not recorded' if event is None else 'for another subject'}"
                                f" (authn height {ctx.read_height(AUTHN_CHAIN)}); a window opens a case for the "
                                "citizen who authenticated")
        if event["revoked"] is not None or ctx.timestamp_ms >= event["expires_at_ms"]:
            raise ContractError(f"authn event {event_id!r} is {'revoked' if event['revoked'] else 'expired'}")
        return item, {"by": "window", "key": ctx.sender.hex(), "authn_event": event_id,
                      "catalog_height": ctx.read_height(CATALOG_CHAIN)}

    def _own_case(self, ctx: TxContext, args: dict) -> dict:
        case = load(ctx.get, _case_key(ident(args, "case_id")))
        if case is None:
            raise ContractError(f"no case {args['case_id']!r}")
        who, _ = signer(ctx)
        if who.department != case["department"]:
            raise ContractError(f"case {case['case_id']!r} is {case['department']}'s; only that department "
                                f"records its evidence, decision and notice (the sender is {who.department}'s)")
        return case

    @method(role="provider")
    def record_evidence(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("case_id", "evidence"))
        case = self._own_case(ctx, args)
        if case["evidence"] is not None or case["decision"] is not None:
            raise ContractError(f"case {case['case_id']!r} already has its "
                                f"{'evidence' if case['evidence'] is not None else 'decision'}")
        specs = {spec["name"]: spec for spec in self._rule(ctx, case["rule_hash"])["inputs"]}
        raw = args["evidence"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= len(specs):
            raise ContractError(f"field 'evidence' must be a list of 1-{len(specs)} entries, one per input")
        evidence = []
        for i, entry in enumerate(raw):
            if not isinstance(entry, dict):
                raise ContractError(f"evidence[{i}] must be an object")
            strict(entry, EVIDENCE_FIELDS)
            name = entry["input"]
            if name not in specs or any(e["input"] == name for e in evidence):
                raise ContractError(f"evidence[{i}].input must be a distinct input of the case's rule "
                                    f"({', '.join(sorted(specs))})")
            clean = {"input": name, "provider": specs[name]["provider"],
                     "catalog_item": specs[name]["catalog_item"],
                     **{f: hex64(entry, f, "a SHA-256 digest") for f in ("request_digest", "answer_commitment",
                                                                       "log_tx_id")},
                     "provider_key": hex64(entry, "provider_key", "the provider's Ed25519 key"),
                     "log_height": entry["log_height"]}
            if isinstance(clean["log_height"], bool) or not isinstance(clean["log_height"], int) \
                    or clean["log_height"] < 1:
                raise ContractError(f"evidence[{i}].log_height must be the authz height of the log entry")
            attestation = entry["attestation"]
            if not isinstance(attestation, str) or len(attestation) != 128:
                raise ContractError(f"evidence[{i}].attestation must be 128 hex digits (an Ed25519 signature)")
            clean["attestation"] = attestation
            self._check_attestation(ctx, clean, f"evidence[{i}]")
            evidence.append(clean)
        case["evidence"] = {"entries": evidence, "height": ctx.height, "by": ctx.sender.hex()}
        return self._store(ctx, case)

    @staticmethod
    def _check_attestation(ctx: TxContext, entry: dict, where: str) -> None:
        key = bytes.fromhex(entry["provider_key"])
        record = lookup_signer(lambda contract, k: ctx.read(CATALOG_CHAIN, contract, k), key)
        if record is None or record.status != "active" or "provider" not in record.roles \
                or record.department != entry["provider"]:
            raise ContractError(f"{where}.provider_key is not an active catalog key of {entry['provider']} with "
                                f"role provider (catalog height {ctx.read_height(CATALOG_CHAIN)})")
        if not attest.attestation_holds(key, bytes.fromhex(entry["request_digest"]),
                                        bytes.fromhex(entry["answer_commitment"]), "PERMIT",
                                        bytes.fromhex(entry["attestation"])):
            raise ContractError(f"{where}.attestation does not verify with the provider key over the "
                                "attestation digest (docs/design.md, \"Verification queries\")") from None

    @method(role="provider")
    def decide(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("case_id", "outcome", "reason"))
        case = self._own_case(ctx, args)
        outcome = one_of(args, "outcome", rules.OUTCOMES)
        reason = _text(args, "reason", REASON_CHARS_MAX)
        if case["decision"] is not None:
            raise ContractError(f"case {case['case_id']!r} was decided at height {case['decision']['height']}")
        document = self._rule(ctx, case["rule_hash"])
        entries = (case["evidence"] or {}).get("entries", [])
        if outcome in FINAL:
            if not document["auto_approve"]:
                raise ContractError(f"case {case['case_id']!r} follows a rule without auto-approve: only "
                                    "manual review is recorded automatically; an officer reviews it")
            if len(entries) != len(document["inputs"]):
                raise ContractError(f"outcome {outcome} needs evidence for every input of the rule "
                                    f"({len(entries)} of {len(document['inputs'])} recorded)")
        _, catalog_height = signer(ctx)
        digests = [e["request_digest"] for e in entries]
        case["decision"] = {"outcome": outcome, "reason": reason, "rule_hash": case["rule_hash"],
                            "evidence": digests, "evidence_digest": hashlib.sha256(
                                canonical_json(entries)).hexdigest(), "height": ctx.height,
                            "at_ms": ctx.timestamp_ms, "by": ctx.sender.hex(), "catalog_height": catalog_height}
        case["status"] = "review" if outcome == rules.MANUAL else outcome
        return self._store(ctx, case)

    @method(role="governance")
    def review(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("case_id", "outcome", "reason"))
        case = self._own_case(ctx, args)
        outcome = one_of(args, "outcome", FINAL)
        if case["status"] != "review":
            raise ContractError(f"case {case['case_id']!r} is {case['status']}, not in manual review")
        _, catalog_height = signer(ctx)
        case["review"] = {"outcome": outcome, "reason": _text(args, "reason", REASON_CHARS_MAX),
                          "height": ctx.height, "at_ms": ctx.timestamp_ms, "by": ctx.sender.hex(),
                          "catalog_height": catalog_height}
        case["status"] = outcome
        return self._store(ctx, case)

    @method(role="provider")
    def record_notice(self, ctx: TxContext, args: dict) -> bytes:
        strict(args, ("case_id", "notice_digest"))
        case = self._own_case(ctx, args)
        digest = hex64(args, "notice_digest", "the SHA-256 of the sealed notice")
        if case["decision"] is None:
            raise ContractError(f"case {case['case_id']!r} has no decision yet to notify")
        if case["notice"] is not None:
            raise ContractError(f"case {case['case_id']!r} has its notice (height {case['notice']['height']})")
        case["notice"] = {"notice_digest": digest, "height": ctx.height, "at_ms": ctx.timestamp_ms}
        return self._store(ctx, case)

    @staticmethod
    def _rule(ctx, rule_hash: str) -> dict:
        document = load(ctx.get, _rule_key(rule_hash))
        if document is None:  # every case's hash was stored when its item was saved
            raise ContractError(f"no rule {rule_hash[:16]}")
        return document

    @staticmethod
    def _store(ctx: TxContext, case: dict) -> bytes:
        value = canonical_json(case)
        ctx.put(_case_key(case["case_id"]), value)
        ctx.put(tag_prefix(case["tag"]) + case["case_id"].encode(), value)
        return value

    # ---- queries ----

    @query
    def item(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("item_id",))
        return load(ctx.get, _item_key(ident(args, "item_id")))

    @query
    def items(self, ctx: QueryContext, args: dict) -> dict:
        strict(args, (), ("department", "after", "limit"))
        department = args.get("department")
        if department is not None and (not isinstance(department, str) or not DEPARTMENT_RE.fullmatch(department)):
            raise ContractError("field 'department' must be a department id")
        prefix = b"item/" if department is None else f"ditem/{department}/".encode()
        return page(ctx, prefix, {k: v for k, v in args.items() if k != "department"}, after_key=id_cursor)

    @query
    def rule(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("rule_hash",))
        return load(ctx.get, _rule_key(hex64(args, "rule_hash", "a rule hash")))

    @query
    def case(self, ctx: QueryContext, args: dict) -> dict | None:
        strict(args, ("case_id",))
        return load(ctx.get, _case_key(ident(args, "case_id")))

    @query
    def cases(self, ctx: QueryContext, args: dict) -> dict:
        return tag_page(ctx, args, tag_prefix)


CONTRACT = ItemContract
