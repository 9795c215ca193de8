"""The explorer: read-only JSON over plain HTTP and the static pages under
node/services/web/, on the [explorer] listen port (docs/design.md, "Explorer
and audit page").

Every answer is what the node holds durably (height <= durable_height),
read on the node's loop between two steps of a chain (node.services.http);
every list is a page of bounded size. Nothing private is served: no key
material, no configuration, no peer addresses (the genesis validators appear
by department and public key only); chain data carries no personal data by
design (docs/design.md, "Subject tags (OPRF)"). Catalog answers come from the
catalog contract's own queries, so the explorer shows exactly what
`govchain query` shows.

    GET /                                  the explorer page
    GET /static/<file>                     its CSS and JavaScript
    GET /api/chains                        this node, its chains and heights
    GET /api/chains/<c>/blocks?before=&limit=      newest first, limit <= BLOCKS_PAGE_MAX
    GET /api/chains/<c>/blocks/<h>?offset=&limit=  header, commit certificate, a page of txs
    GET /api/chains/<c>/txs/<id>           a transaction and its receipt
    GET /api/chains/<c>/txs/<id>/proof     its inclusion proof (node.ledger.proofs), checked by the page
    GET /api/catalog/departments           departments (catalog query `departments`)
    GET /api/catalog/items?after=&limit=   catalog items (catalog query `items`)
    GET /api/catalog/agreements?after=&limit=  standing agreements (catalog query `agreements`)
    GET /api/items?after=&limit=           service items (item query `items`), when the item chain runs here
    GET /api/items/cases/<id>              one case and its decision (item query `case`)
    POST /api/audit                        the citizen audit page's signed AuditRequest (JSON), answered by the
                                           node's Audit service (node.services.audit): a page of entries with proofs

POST /api/audit is the one write-shaped call, and it changes nothing: the
body is at most node.services.http.POST_BODY_BYTES_MAX bytes of JSON with
exactly the AuditRequest's fields (bytes in hex), each client address may
send AUDIT_BURST requests at once and AUDIT_RATE_PER_S after that (all
clients together AUDIT_ALL_BURST and AUDIT_ALL_RATE_PER_S), a page is at
most AUDIT_PAGE_MAX entries, and only a well-formed request reaches the
service. Neither the body nor the tag is ever logged.
"""
from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consensus.block import BlockHeader
from consensus.quorum import quorum_size
from node.chain.chain_node import ChainNode
from node.core import codec
from node.ledger.proofs import ProofError, build_inclusion_proof, payload_json
from node.ledger.query import QueryError, run_query
from node.pb import audit_pb2
from node.services import audit
from node.services.http import HttpRequest, HttpResponse, HttpServer, json_response

WEB_DIR = Path(__file__).parent / "web"
BLOCKS_PAGE_DEFAULT, BLOCKS_PAGE_MAX = 20, 50
TXS_PAGE_DEFAULT, TXS_PAGE_MAX = 50, 100
CATALOG_PAGE_DEFAULT, CATALOG_PAGE_MAX = 50, 100
AUDIT_PAGE_MAX = 50
AUDIT_RATE_PER_S, AUDIT_BURST = 0.5, 5  # per client address
AUDIT_ALL_RATE_PER_S, AUDIT_ALL_BURST = 5.0, 20  # all clients together
AUDIT_CLIENTS_MAX = 4096  # client addresses remembered; the least recently seen is forgotten first
_AUDIT_FIELDS = {"tag": str, "time_ms": int, "nonce": str, "key": str, "signature": str, "after": str, "limit": int}
_AUDIT_BYTES = ("nonce", "key", "signature")
_AUDIT_STATUS = {"INVALID_ARGUMENT": "400 Bad Request", "PERMISSION_DENIED": "403 Forbidden",
                 "FAILED_PRECONDITION": "404 Not Found"}
_HEX_RE = re.compile(r"(?:[0-9a-f]{2}){0,128}")
_TX_ID_RE = re.compile(r"[0-9a-f]{64}")
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


class BadRequest(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int_param(request: HttpRequest, name: str, default: int, high: int, low: int = 0) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest("400 Bad Request", f"{name} must be an integer in {low}..{high}, not {raw[:32]!r}")
    return int(raw)


def load_static(directory: Path = WEB_DIR) -> dict[str, tuple[bytes, str]]:
    """Every file of the web directory, read once: a request names a file of
    this dict, never a path on disk."""
    files = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in _STATIC_TYPES:
            files[path.name] = (path.read_bytes(), _STATIC_TYPES[path.suffix])
    return files


def header_json(h: BlockHeader) -> dict[str, Any]:
    return {"chain_id": h.chain_id, "height": h.height, "hash": h.hash.hex(), "parent_hash": h.parent_hash.hex(),
            "proposer": h.proposer, "timestamp_ms": h.timestamp_ms, "tx_root": h.tx_root.hex(),
            "state_root": h.state_root.hex(), "proposal_digest": h.proposal_digest.hex(), "link": h.link.hex()}


def receipt_json(r) -> dict[str, Any]:
    return {"tx_id": r.tx_id.hex(), "height": r.height, "index": r.index, "status": r.status,
            "message": r.message, "output": r.output.decode(errors="replace")}


class RateLimit:
    """Token buckets per client address: `burst` at once, then `rate` per second."""

    def __init__(self, rate: float, burst: int, clients_max: int = AUDIT_CLIENTS_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clients_max, self._clock = rate, burst, clients_max, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def allow(self, client: str) -> bool:
        now = self._clock()
        tokens, at = self._buckets.pop(client, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) * self._rate)
        if len(self._buckets) >= self._clients_max:
            self._buckets.popitem(last=False)
        self._buckets[client] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1


def audit_request(body: bytes) -> audit_pb2.AuditRequest:
    """The AuditRequest a POST /api/audit body spells (bytes in lowercase hex), or BadRequest
    naming what is wrong; the Audit service checks the rest."""
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("400 Bad Request", "the body must be a JSON object: {tag, time_ms, nonce, key, "
                                            "signature, after?, limit?}") from None
    if not isinstance(fields, dict):
        raise BadRequest("400 Bad Request", "the body must be a JSON object")
    if unknown := sorted(set(fields) - set(_AUDIT_FIELDS)):
        raise BadRequest("400 Bad Request", f"unknown field {unknown[0][:32]!r}; the fields are "
                                            f"{', '.join(_AUDIT_FIELDS)}")
    for name, kind in _AUDIT_FIELDS.items():
        if name not in fields and name not in ("after", "limit"):
            raise BadRequest("400 Bad Request", f"{name} is missing")
        value = fields.get(name, kind())
        if type(value) is not kind or (kind is int and not 0 <= value < 1 << 64):
            raise BadRequest("400 Bad Request", f"{name} must be " + (
                "an integer in 0..2^64-1" if kind is int else "a string"))
        if name in _AUDIT_BYTES and not _HEX_RE.fullmatch(value):
            raise BadRequest("400 Bad Request", f"{name} must be lowercase hex, at most 128 bytes")
    if fields.get("limit", 0) > AUDIT_PAGE_MAX:
        raise BadRequest("400 Bad Request", f"limit must be 0..{AUDIT_PAGE_MAX} (0: {AUDIT_PAGE_MAX})")
    return audit_pb2.AuditRequest(
        tag=fields["tag"], time_ms=fields["time_ms"], after=fields.get("after", ""),
        limit=fields.get("limit") or AUDIT_PAGE_MAX, **{name: bytes.fromhex(fields[name]) for name in _AUDIT_BYTES})


class Explorer:
    """The explorer's routes over `host` (the daemon's Node: config, chains)."""

    POST_PATHS = frozenset({"/api/audit"})

    def __init__(self, host, static: dict[str, tuple[bytes, str]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._host = host
        self._static = load_static() if static is None else static
        self._audit_rate = RateLimit(AUDIT_RATE_PER_S, AUDIT_BURST, clock=clock)
        self._audit_all_rate = RateLimit(AUDIT_ALL_RATE_PER_S, AUDIT_ALL_BURST, clock=clock)

    def server(self) -> HttpServer:
        return HttpServer(self.route, post_paths=self.POST_PATHS)

    def route(self, request: HttpRequest) -> HttpResponse | None:
        path = request.path
        if request.method == "POST":
            return self._audit(request)
        if path == "/" or path == "/index.html":
            return self._file("index.html")
        if path.startswith("/static/"):
            return self._file(path[len("/static/"):])
        if not path.startswith("/api/"):
            return None
        try:
            return json_response(self._api(path[len("/api/"):].rstrip("/").split("/"), request))
        except BadRequest as exc:
            return json_response({"error": str(exc)}, exc.status)

    def _file(self, name: str) -> HttpResponse:
        found = self._static.get(name)
        if found is None:
            return json_response({"error": f"no file {name[:64]!r}"}, "404 Not Found")
        body, content_type = found
        return HttpResponse("200 OK", body, content_type)

    # ---- the JSON API -----------------------------------------------------------------------

    def _api(self, parts: list[str], request: HttpRequest) -> dict[str, Any]:
        match parts:
            case ["chains"]:
                return self.chains()
            case ["chains", chain_id, "blocks"]:
                return self.blocks(self._chain(chain_id), before=_int_param(request, "before", 0, 1 << 63),
                                   limit=_int_param(request, "limit", BLOCKS_PAGE_DEFAULT, BLOCKS_PAGE_MAX, 1))
            case ["chains", chain_id, "blocks", height]:
                if not height.isdigit():
                    raise BadRequest("400 Bad Request", f"a block height is a positive integer, not {height[:32]!r}")
                return self.block(self._chain(chain_id), int(height),
                                  offset=_int_param(request, "offset", 0, 1 << 32),
                                  limit=_int_param(request, "limit", TXS_PAGE_DEFAULT, TXS_PAGE_MAX, 1))
            case ["chains", chain_id, "txs", tx_id]:
                return self.transaction(self._chain(chain_id), tx_id)
            case ["chains", chain_id, "txs", tx_id, "proof"]:
                return self.proof(self._chain(chain_id), tx_id)
            case ["catalog", "departments"]:
                return self._catalog("departments", {})
            case ["catalog", "items"]:
                return self._catalog("items", self._page_args(request))
            case ["catalog", "agreements"]:
                return self._catalog("agreements", self._page_args(request))
            case ["items"]:
                return self.items(self._page_args(request))
            case ["items", "cases", case_id]:
                return self.case(case_id)
            case ["audit"]:
                raise BadRequest("405 Method Not Allowed", "POST a signed audit request here (the citizen audit "
                                                           "page does)")
        raise BadRequest("404 Not Found", "no such API; see GET /api/chains and docs/design.md, "
                                          "\"Explorer and audit page\"")

    def _audit(self, request: HttpRequest) -> HttpResponse:
        """POST /api/audit: bounded, then shape-checked, then the node's Audit service (which logs nothing)."""
        try:
            if not (self._audit_rate.allow(request.peer) and self._audit_all_rate.allow("")):
                raise BadRequest("429 Too Many Requests", "too many audit requests; wait a few seconds and sign "
                                                          "a new one")
            reply = audit.service_for(self._host).answer(audit_request(request.body))
        except BadRequest as exc:
            return json_response({"error": str(exc)}, exc.status)
        except audit.Refusal as refusal:
            return json_response({"error": str(refusal), "code": refusal.code.name}, _AUDIT_STATUS[refusal.code.name])
        return json_response({"chain_id": reply.chain_id, "height": reply.height, "more": reply.more,
                              "next": reply.next, "entries": [{"entry": json.loads(e.entry_json),
                                                               "proof": json.loads(e.proof_json)}
                                                              for e in reply.entries]})

    @staticmethod
    def _page_args(request: HttpRequest) -> dict[str, Any]:
        args: dict[str, Any] = {"limit": _int_param(request, "limit", CATALOG_PAGE_DEFAULT, CATALOG_PAGE_MAX, 1)}
        if request.query.get("after"):
            args["after"] = request.query["after"]
        return args

    def _chain(self, chain_id: str) -> ChainNode:
        chain = self._host.chains.get(chain_id)
        if chain is None:
            raise BadRequest("404 Not Found", f"no chain {chain_id[:64]!r} on this node "
                                              f"(it runs {', '.join(sorted(self._host.chains)) or 'none'})")
        return chain

    def _running(self, contract: str) -> ChainNode | None:
        """The chain whose genesis runs `contract` (platform contracts run on one chain each)."""
        for _, chain in sorted(self._host.chains.items()):
            if any(c.name == contract for c in chain.genesis.contracts):
                return chain
        return None

    def chains(self) -> dict[str, Any]:
        out = []
        for chain_id, chain in sorted(self._host.chains.items()):
            s, genesis = chain.status(), chain.genesis
            out.append({"chain_id": chain_id, "height": s["height"], "view": s["view"],
                        "primary": s["primary"], "primary_department": genesis.validators[s["primary"]].department,
                        "head_hash": s["head_hash"].hex(), "genesis_hash": genesis.hash.hex(),
                        "contracts": [{"name": c.name, "version": c.version} for c in genesis.contracts],
                        "validators": [{"replica": i, "department": v.department, "public_key": v.public_key}
                                       for i, v in enumerate(genesis.validators)]})
        return {"department": self._host.config.department, "chains": out}

    def blocks(self, chain: ChainNode, *, before: int, limit: int) -> dict[str, Any]:
        """Up to `limit` blocks below height `before` (0: from the top), newest first."""
        top = chain.durable_height if before == 0 else min(before - 1, chain.durable_height)
        validators = chain.genesis.validators
        out = []
        for height in range(top, max(0, top - limit), -1):
            header, block = chain.ledger.header(height), chain.ledger.block(height)
            cert = block.certificate
            out.append({**header_json(header), "txs": len(block.proposal.requests),
                        "proposer_department": validators[header.proposer].department,
                        "certificate": {"view": cert.view, "signers": [c.replica for c in cert.commits],
                                        "signer_departments": [validators[c.replica].department
                                                               for c in cert.commits]}})
        lowest = top - len(out) + 1
        return {"chain_id": chain.chain_id, "height": chain.durable_height, "blocks": out,
                "next_before": lowest if lowest > 1 else None}

    def block(self, chain: ChainNode, height: int, *, offset: int, limit: int) -> dict[str, Any]:
        if not 1 <= height <= chain.durable_height:
            raise BadRequest("404 Not Found", f"no block at height {height} on {chain.chain_id} "
                                              f"(height is {chain.durable_height})")
        header, block = chain.ledger.header(height), chain.ledger.block(height)
        validators, cert = chain.genesis.validators, block.certificate
        requests = block.proposal.requests
        txs = []
        for index in range(offset, min(len(requests), offset + limit)):
            tx = codec.tx_from_request(requests[index])
            receipt = chain.ledger.receipt_at(height, index)
            txs.append({"index": index, "id": tx.id.hex(), "contract": tx.contract, "method": tx.method,
                        "sender": tx.sender.hex(), "status": receipt.status if receipt else ""})
        return {**header_json(header), "proposer_department": validators[header.proposer].department,
                "proposal_timestamp_ms": block.proposal.timestamp_ms, "tx_count": len(requests),
                "offset": offset, "txs": txs,
                "certificate": {"chain_id": cert.chain_id, "view": cert.view, "seq": cert.seq,
                                "digest": cert.digest.hex(), "link": cert.link.hex(),
                                "quorum": quorum_size(len(validators)),
                                "commits": [{"replica": c.replica, "department": validators[c.replica].department,
                                             "signature": c.signature.hex()} for c in cert.commits]}}

    @staticmethod
    def _locate(chain: ChainNode, tx_id: str) -> tuple[int, int]:
        if not _TX_ID_RE.fullmatch(tx_id):
            raise BadRequest("400 Bad Request", "a transaction id is 64 lowercase hex characters")
        location = chain.ledger.tx_location(bytes.fromhex(tx_id))
        if location is None or location[0] > chain.durable_height:
            raise BadRequest("404 Not Found", f"transaction {tx_id} is not committed on {chain.chain_id}")
        return location

    def transaction(self, chain: ChainNode, tx_id: str) -> dict[str, Any]:
        height, index = self._locate(chain, tx_id)
        tx = codec.tx_from_request(chain.ledger.block(height).proposal.requests[index])
        receipt = chain.ledger.receipt_at(height, index)
        # The nonce is a uint64: a string, which JavaScript reads without rounding it to a double.
        return {"tx": {"id": tx_id, "chain_id": tx.chain_id, "sender": tx.sender.hex(), "nonce": str(tx.nonce),
                       "contract": tx.contract, "method": tx.method, **payload_json(tx.payload)},
                "receipt": receipt_json(receipt)}

    def proof(self, chain: ChainNode, tx_id: str) -> dict[str, Any]:
        """The inclusion proof the page verifies itself (docs/design.md, "Audit proofs")."""
        self._locate(chain, tx_id)
        try:
            return build_inclusion_proof(chain.ledger, bytes.fromhex(tx_id))
        except ProofError as exc:
            raise BadRequest("500 Internal Server Error", str(exc)) from exc

    def _catalog(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        chain = self._running("catalog")
        if chain is None:
            raise BadRequest("404 Not Found", "this node runs no catalog chain")
        return {"chain_id": chain.chain_id, **self._query(chain, "catalog", method, args)}

    def items(self, args: dict[str, Any]) -> dict[str, Any]:
        """Service items of the item chain (its query `items`), when this node runs it."""
        chain = self._running("item")
        if chain is None:
            return {"available": False, "message": "no chain on this node runs the item contract"}
        return {"available": True, "chain_id": chain.chain_id, **self._query(chain, "item", "items", args)}

    def case(self, case_id: str) -> dict[str, Any]:
        """One case and its decision, by case id (the item contract's query `case`); cases are
        not listed: the contract lists them by subject tag only."""
        chain = self._running("item")
        if chain is None:
            raise BadRequest("404 Not Found", "no chain on this node runs the item contract")
        return {"chain_id": chain.chain_id, **self._query(chain, "item", "case", {"case_id": case_id})}

    @staticmethod
    def _query(chain: ChainNode, contract: str, method: str, args: dict[str, Any]) -> dict[str, Any]:
        state = chain.state
        try:
            result = run_query(chain.registry, state, chain_id=chain.chain_id, contract=contract, method=method,
                               args=json.dumps(args).encode())
        except QueryError as exc:
            raise BadRequest("400 Bad Request", str(exc)) from exc
        return {"height": state.height, "result": json.loads(result)}
