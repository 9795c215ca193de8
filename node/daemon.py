"""Wires one department's node: keys, chains, gRPC server, MQTT, signals."""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from node.core import codec

from node.net import tls
from node.net.access import PeerAuthInterceptor, StreamCapInterceptor, validator_roles
from node.chain.chain_node import ChainNode
from node.core.config import NodeConfig
from node.contracts import BadAppState, MissingContracts, genesis_state, registry_for
from node.identity.citizens import AUTHN_CHAIN
from node.identity.signers import CATALOG_CHAIN
from node.services import offers
from node.services.events import EventPublisher
from node.services.push import Pusher
from node.core.genesis import GenesisError, check_message_bytes, load_genesis
from node.core.keys import KeyFileError, load_signing_key
from node.ledger.ledger import Ledger, open_ledger
from node.pb import peer_pb2, peer_pb2_grpc
from node.ledger.storage import StorageCorrupt
from node.services import CLIENT_PORT_SERVICES
from node.services.explorer import Explorer
from node.services.http import HttpServer
from node.services.metrics import MetricsServer, metrics_registry
from node.net.transport import PeerService, Transport

log = logging.getLogger("govchain.node")

STOP_GRACE_S = 3.0
STATUS_INTERVAL_S = 5.0


class StartupError(Exception):
    """A problem an operator must fix before the node can start."""


class RateLimitedLog:
    """Logs each kind of bad input at most once per interval, with a count."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) >= self._interval:
            skipped = self._suppressed.pop(kind, 0)
            log.warning("%s: %s%s", kind, detail, f" (+{skipped} more)" if skipped else "")
            self._last[kind] = now
        else:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1


class _Malformed:
    """What a request that does not parse decodes to (instead of raising)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _MalformedStream(Exception):
    """Raised into a streaming handler's request iterator at a request that
    does not parse; the interceptor turns it into INVALID_ARGUMENT."""


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Bytes that do not parse as the method's request message end the RPC
    with INVALID_ARGUMENT and are counted, on every service. Without this,
    grpc answers UNKNOWN, logs a traceback per bad message (a log flood anyone
    can cause) and a request stream's handler may never hear of it."""

    def __init__(self, on_bad) -> None:
        self._on_bad = on_bad  # (kind, detail) -> None

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or not hasattr(handler, "_replace"):
            return handler
        method = handler_call_details.method
        kind = "malformed peer message" if method.startswith("/govchain.v1.Peer/") else "malformed client request"
        decode = handler.request_deserializer

        def lenient(data: bytes):
            try:
                return decode(data)
            except Exception as exc:  # DecodeError, and whatever else a parser throws
                return _Malformed(f"{method}: {exc}")

        async def refuse(bad: _Malformed, context) -> None:
            self._on_bad(kind, bad.reason)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed request: {bad.reason}")

        async def checked(requests):
            async for request in requests:
                if isinstance(request, _Malformed):
                    # Not abort() here: a handler may read its requests in
                    # another task while it sends responses, and a status
                    # sent from there collides with them (the RPC then hangs).
                    raise _MalformedStream(request)
                yield request

        if handler.request_streaming:
            name = "stream_stream" if handler.response_streaming else "stream_unary"
            behavior = getattr(handler, name)
            if handler.response_streaming:
                async def wrapped(requests, context):
                    try:
                        async for response in behavior(checked(requests), context):
                            yield response
                    except _MalformedStream as exc:
                        await refuse(exc.args[0], context)
            else:
                async def wrapped(requests, context):
                    try:
                        return await behavior(checked(requests), context)
                    except _MalformedStream as exc:
                        await refuse(exc.args[0], context)
        else:
            name = "unary_stream" if handler.response_streaming else "unary_unary"
            behavior = getattr(handler, name)
            if handler.response_streaming:
                async def wrapped(request, context):
                    if isinstance(request, _Malformed):
                        await refuse(request, context)
                    async for response in behavior(request, context):
                        yield response
            else:
                async def wrapped(request, context):
                    if isinstance(request, _Malformed):
                        await refuse(request, context)
                    return await behavior(request, context)
        return handler._replace(request_deserializer=lenient, **{name: wrapped})


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.chains: dict[str, ChainNode] = {}
        self.bad_input: dict[str, int] = {}
        self.verify_stats = None  # node.services.verify.VerifyStats, set when this node answers verification queries
        self._bad_log = RateLimitedLog()
        self._ledgers: list[Ledger] = []
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify")
        self._key = self._load_key()
        self._tls = self._load_tls()
        self.tls = self._tls  # for services that call other nodes (node/services/cases.py)
        self._transport: Transport | None = None
        self._publisher = (EventPublisher.from_config(config.mqtt, config.department)
                           if config.mqtt else None)
        # Notices and offers (docs/design.md, "Push notices and offers"); services use host.pusher.
        self.pusher = (Pusher.from_config(config.mqtt, config.department, self._key, config.data_dir / "notices")
                       if config.mqtt else None)
        self._offers: list[asyncio.Task] = []
        self._servers: list[grpc.aio.Server] = []
        self._health = health.aio.HealthServicer()
        self._stop_requested = asyncio.Event()
        self.failure: BaseException | None = None
        self._status_task: asyncio.Task | None = None
        self._http_servers: list[HttpServer] = []  # metrics, explorer

    # ---- start --------------------------------------------------------------

    def _load_key(self):
        try:
            return load_signing_key(self.config.key_file)
        except Exception as exc:
            raise StartupError(f"key_file {self.config.key_file}: {exc}") from exc

    def _load_tls(self) -> tls.Material | None:
        cfg = self.config.tls
        if cfg.insecure:
            return None
        try:
            material = tls.Material.load(cfg.ca, cfg.cert, cfg.key)
            tls.check_own_cert(material, bytes(self._key.verify_key))
        except (tls.TlsError, KeyFileError) as exc:
            raise StartupError(f"[tls]: {exc}") from exc
        return material

    def _open_chains(self) -> None:
        cfg = self.config
        key = self._key
        geneses, registries, initial = [], {}, {}
        for chain_cfg in cfg.chains:
            try:
                genesis = load_genesis(chain_cfg.genesis)
            except Exception as exc:
                raise StartupError(f"chain {chain_cfg.id}: {exc}") from exc
            try:
                check_message_bytes(genesis, cfg.limits.message_bytes_max, source=f"chain {genesis.chain_id}",
                                    limit_name="[limits] message_bytes_max")
            except GenesisError as exc:
                raise StartupError(str(exc)) from exc
            if genesis.chain_id != chain_cfg.id:
                raise StartupError(f"chain {chain_cfg.id}: genesis {chain_cfg.genesis} is for chain "
                                   f"{genesis.chain_id!r}; fix [[chains]] id or genesis path")
            try:
                validator = genesis.validator(cfg.department)
            except Exception as exc:
                raise StartupError(str(exc)) from exc
            if validator.public_key_bytes != bytes(key.verify_key):
                raise StartupError(f"chain {genesis.chain_id}: key_file {cfg.key_file} holds public key "
                                   f"{bytes(key.verify_key).hex()}, genesis names {validator.public_key} "
                                   f"for {cfg.department}; use the matching key file")
            try:  # before any store is opened: a node that cannot run a chain's code does not start
                registries[genesis.chain_id] = registry_for(genesis.chain_id, genesis.contracts)
                initial[genesis.chain_id] = genesis_state(genesis.chain_id, genesis.app_state,
                                                          registries[genesis.chain_id])
            except (MissingContracts, BadAppState) as exc:
                raise StartupError(str(exc)) from exc
            geneses.append(genesis)
        served = {g.chain_id for g in geneses}
        for genesis in geneses:  # docs/design.md, "Cross-chain reads": a node serves the chains it reads
            unserved = [c for c in genesis.reads if c not in served]
            if unserved:
                raise StartupError(f"chain {genesis.chain_id}: its genesis reads {', '.join(unserved)}, which this "
                                   f"node does not serve; add {'them' if len(unserved) > 1 else 'it'} to "
                                   f"[[chains]] (docs/design.md, \"Cross-chain reads\")")
        self._transport = Transport(cfg.limits.stream_queue_max, cfg.limits.message_bytes_max,
                                    self._tls.channel_credentials() if self._tls else None,
                                    self._server_names(geneses))
        for genesis in geneses:
            try:
                ledger = open_ledger(str(cfg.data_dir / genesis.chain_id), genesis.chain_id, genesis.hash,
                                     initial[genesis.chain_id])
            except Exception as exc:
                raise StartupError(str(exc)) from exc
            self._ledgers.append(ledger)
            self.chains[genesis.chain_id] = ChainNode(
                genesis=genesis, department=cfg.department, signing_key=key, ledger=ledger,
                registry=registries[genesis.chain_id], tick_ms=cfg.tick_ms, transport=self._transport,
                mempool_max=cfg.limits.mempool_txs_max, message_bytes_max=cfg.limits.message_bytes_max,
                pool=self._pool, publisher=self._publisher, catalog=self._durable(CATALOG_CHAIN),
                authn=self._durable(AUTHN_CHAIN),
                log_drop=self._bad_log.warning, on_failure=self._chain_failed)
        for chain in self.chains.values():
            chain.connect_reads({c: self.chains[c] for c in chain.genesis.reads})

    def _durable(self, chain_id: str):
        """Admission on another chain reads permissions from this node's
        durable state of `chain_id` (the catalog's keys, authn's bindings); a
        node that does not serve it reads nothing (docs/design.md,
        "Identities and permissions")."""
        def read(contract: str, key: bytes) -> bytes | None:
            chain = self.chains.get(chain_id)
            return chain.state.get(contract, key) if chain is not None else None
        return read

    @staticmethod
    def _server_names(geneses) -> dict[str, str]:
        """Peer address -> the department whose certificate must answer there."""
        names: dict[str, str] = {}
        for genesis in geneses:
            for v in genesis.validators:
                if names.setdefault(v.address, v.department) != v.department:
                    raise StartupError(f"chain {genesis.chain_id}: address {v.address} is {v.department}'s, but "
                                       f"another genesis gives it to {names[v.address]}; fix the genesis files")
        return names

    def _deliver(self, envelope: peer_pb2.PeerEnvelope) -> None:
        chain = self.chains.get(envelope.chain_id)
        if chain is None:
            return self._bad("unknown chain", f"peer message for chain {envelope.chain_id!r}")
        if not chain.worth_decoding(envelope.message):
            return
        try:
            message = codec.envelope_from_proto(envelope)
        except codec.CodecError as exc:
            return self._bad("malformed peer message", str(exc))
        chain.deliver(message, envelope.ByteSize())

    def _bad(self, kind: str, detail: str) -> None:
        self.bad_input[kind] = self.bad_input.get(kind, 0) + 1
        self._bad_log.warning(kind, detail)

    def _server(self, *interceptors) -> grpc.aio.Server:
        """One gRPC server per port: its own concurrent_rpcs_max pool and
        per-client stream caps, so neither port can starve the other."""
        limits = self.config.limits
        return grpc.aio.server(
            options=[("grpc.max_send_message_length", limits.message_bytes_max),
                     ("grpc.max_receive_message_length", limits.message_bytes_max), ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=limits.concurrent_rpcs_max,
            interceptors=[MalformedRequestInterceptor(self._bad), *interceptors,
                          StreamCapInterceptor(limits.client_streams_max, self._bad)])

    @staticmethod
    def _listen(server: grpc.aio.Server, address, credentials: grpc.ServerCredentials | None) -> None:
        try:
            port = (server.add_secure_port(str(address), credentials) if credentials
                    else server.add_insecure_port(str(address)))
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {address}: {exc}; is another node running there?") from exc
        if port == 0:
            raise StartupError(f"cannot listen on {address}; is another node running there?")

    async def start(self) -> None:
        cfg = self.config
        if self._tls is None:
            log.warning("!!! TLS IS OFF ([tls] insecure = true): both ports speak plaintext and ANY process that "
                        "reaches peer_listen %s can speak as a validator's peer; use only on an isolated, "
                        "trusted network !!!", cfg.peer_listen)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self._open_chains()
        peer = self._server(*([PeerAuthInterceptor(validator_roles({c: n.genesis for c, n in self.chains.items()}),
                                                   self._bad)] if self._tls else []))
        peer_pb2_grpc.add_PeerServicer_to_server(PeerService(self._deliver), peer)
        self._listen(peer, cfg.peer_listen, self._tls and self._tls.server_credentials(True))
        client = self._server()
        try:
            services = [name for register in CLIENT_PORT_SERVICES if (name := register(self, client)) is not None]
        except KeyFileError as exc:  # a service's key file (e.g. [identity] oprf_key_file)
            raise StartupError(str(exc)) from exc
        health_pb2_grpc.add_HealthServicer_to_server(self._health, client)
        reflection.enable_server_reflection(
            (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), client)
        self._listen(client, cfg.client_listen, self._tls and self._tls.server_credentials(cfg.tls.require_client_cert))
        await self._start_http()
        for server in (peer, client):
            await server.start()
            self._servers.append(server)
        if self._publisher is not None:
            await self._publisher.start()
        if self.pusher is not None:
            await self.pusher.start()
        for chain in self.chains.values():
            chain.start()
        self._offers = offers.start(self)
        for name in ("", *services):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._status_task = asyncio.get_running_loop().create_task(self._heartbeat())
        log.info("node %s ready: peer %s (%s), client %s (%s), chains %s", cfg.department, cfg.peer_listen,
                 "mutual TLS" if self._tls else "PLAINTEXT", cfg.client_listen,
                 "PLAINTEXT" if not self._tls else "TLS, client certificate required"
                 if cfg.tls.require_client_cert else "TLS", ", ".join(self.chains))

    @property
    def transport(self) -> Transport | None:
        return self._transport

    async def _start_http(self) -> None:
        """Prometheus metrics on their own port, with [metrics] (docs/operations.md, "Metrics"); the
        explorer on another, with [explorer] (docs/design.md, "Explorer and audit page")."""
        for table, cfg, make, path in (("metrics", self.config.metrics, lambda: MetricsServer(metrics_registry(self)),
                                        "metrics"),
                                       ("explorer", self.config.explorer, lambda: Explorer(self).server(),
                                        "")):
            if cfg is None:
                continue
            server = make()
            try:
                await server.listen(cfg.listen.host, cfg.listen.port)
            except OSError as exc:
                raise StartupError(f"cannot listen on {cfg.listen} ([{table}] listen): {exc.strerror or exc}; "
                                   f"is another node running there?") from exc
            self._http_servers.append(server)
            log.info("%s at http://%s/%s", table, cfg.listen, path)

    async def _heartbeat(self) -> None:
        while True:
            if self._publisher is not None:
                self._publisher.publish_status(self.config.department, self.status())
            await asyncio.sleep(STATUS_INTERVAL_S)

    def status(self) -> dict:
        chains = {}
        for chain_id, chain in self.chains.items():
            s = chain.status()
            chains[chain_id] = {**s, "head_hash": s["head_hash"].hex()}
        return {"department": self.config.department, "up": True, "chains": chains}

    # ---- stop ---------------------------------------------------------------

    async def stop(self) -> None:
        """Graceful: stop taking work, let RPCs finish, close LevelDB last."""
        log.info("node %s stopping", self.config.department)
        for chain in self.chains.values():
            chain.stopping = True
        await self._health.enter_graceful_shutdown()
        if self._status_task:
            self._status_task.cancel()
        await asyncio.gather(*(server.stop(STOP_GRACE_S) for server in self._servers))
        for http_server in self._http_servers:
            await http_server.stop()
        await offers.stop(self._offers)
        for chain in self.chains.values():
            await chain.stop()
        if self._transport is not None:
            await self._transport.stop()
        if self._publisher is not None:
            await self._publisher.stop()
        if self.pusher is not None:
            await self.pusher.stop()
        for ledger in self._ledgers:
            ledger.close()
        self._pool.shutdown(wait=True)
        log.info("node %s stopped", self.config.department)

    def _chain_failed(self, exc: BaseException) -> None:
        """Fail-stop: a chain that cannot go on takes the node down (exit 1),
        so the operator's supervisor restarts it from what is on disk."""
        self.failure = exc
        self._stop_requested.set()

    async def run_until_signalled(self) -> bool:
        """Returns False when the node stopped because a chain failed."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_requested.set)
        await self.start()
        await self._stop_requested.wait()
        await self.stop()
        return self.failure is None


def run(config: NodeConfig) -> int:
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        node = Node(config)
        ok = asyncio.run(node.run_until_signalled())
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 2
    if not ok:
        if isinstance(node.failure, StorageCorrupt):  # its store is marked damaged: the next start refuses
            log.critical("node stopped: %s", node.failure)
        else:
            log.critical("node stopped after an internal error; see the traceback above")
        return 1
    return 0
