"""Who may do what on each port (docs/security.md).

- StreamCapInterceptor: at most `client_streams_max` concurrent streaming
  RPCs per client, keyed by its TLS certificate or, without one, by its IP
  address; so one client holding idle StreamBlocks cannot use up the port's
  `concurrent_rpcs_max` pool for everyone else.
- PeerAuthInterceptor (peer port): every Peer RPC must come from a
  certificate bound to a validator of a chain this node serves
  (node.net.tls.bound_key); each envelope on the stream must be for one of that
  validator's chains and under its own replica index there, else it is
  dropped and counted before anything decodes it.
"""
from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping

import grpc

from node.core.genesis import Genesis
from node.net.tls import bound_key, peer_cert

OnBad = Callable[[str, str], None]  # (kind, detail): counted and rate-limit logged


def _wrap(handler, around, screen=None, *, unary: bool = True):
    """`handler` with each call run inside `around(context)`, an async
    context manager that may abort and yields what `screen(requests, it)`
    needs to filter a request stream. unary=False leaves unary-unary
    handlers alone."""
    kind = f"{'stream' if handler.request_streaming else 'unary'}_" \
           f"{'stream' if handler.response_streaming else 'unary'}"
    if kind == "unary_unary" and not unary:
        return handler
    behavior = getattr(handler, kind)
    if screen is None or not handler.request_streaming:
        screen = lambda request, _: request  # noqa: E731
    if handler.response_streaming:
        async def wrapped(request, context):
            async with around(context) as state:
                async for response in behavior(screen(request, state), context):
                    yield response
    else:
        async def wrapped(request, context):
            async with around(context) as state:
                return await behavior(screen(request, state), context)
    return handler._replace(**{kind: wrapped})


def client_key(context) -> str:
    """Whom a stream is charged to: the client certificate, else the IP."""
    cert = peer_cert(context)
    if cert is not None:
        return "certificate " + hashlib.sha256(cert).hexdigest()[:16]
    peer = context.peer()  # "ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "unix:/path"
    return "address " + (peer.partition(":")[2].rpartition(":")[0] if peer.startswith(("ipv4:", "ipv6:")) else peer)


class StreamCapInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, streams_max: int, on_bad: OnBad) -> None:
        self._max = streams_max
        self._on_bad = on_bad
        self.active: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def _slot(self, context):
        key = client_key(context)
        if self.active.get(key, 0) >= self._max:
            self._on_bad("client stream cap", key)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{key} already has {self._max} open streams (client_streams_max); "
                                f"close one first")
        self.active[key] = self.active.get(key, 0) + 1
        try:
            yield
        finally:
            self.active[key] -= 1
            if not self.active[key]:
                del self.active[key]

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        return None if handler is None else _wrap(handler, self._slot, unary=False)


def validator_roles(genesis_files: Mapping[str, Genesis]) -> dict[bytes, dict[str, int]]:
    """Ed25519 public key -> {chain id: replica index} over the chains served."""
    roles: dict[bytes, dict[str, int]] = {}
    for chain_id, genesis in genesis_files.items():
        for index, validator in enumerate(genesis.validators):
            roles.setdefault(validator.public_key_bytes, {})[chain_id] = index
    return roles


class PeerAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, roles: dict[bytes, dict[str, int]], on_bad: OnBad) -> None:
        self._roles = roles
        self._on_bad = on_bad

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        return None if handler is None else _wrap(handler, self._authenticate, self._screen)

    @contextlib.asynccontextmanager
    async def _authenticate(self, context):
        cert = peer_cert(context)
        key = bound_key(cert) if cert is not None else None
        roles = self._roles.get(key) if key is not None else None
        if not roles:
            what = ("no client certificate" if cert is None else "a certificate bound to no validator key"
                    if key is None else f"validator key {key.hex()[:16]}, which validates no chain served here")
            self._on_bad("unauthorized peer", f"{context.peer()}: {what}")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"peer port: {what}; only validators of this node's chains may connect")
        yield roles

    def _screen(self, envelopes, roles: dict[str, int]):
        async def allowed():
            async for envelope in envelopes:
                if self._allowed(envelope, roles):
                    yield envelope
        return allowed()

    def _allowed(self, envelope, roles: dict[str, int]) -> bool:
        index = roles.get(envelope.chain_id)
        which = envelope.message.WhichOneof("message")
        if which is None or (index is not None and getattr(envelope.message, which).replica == index):
            return True  # (an empty envelope is the codec's to refuse)
        self._on_bad("peer message under another identity",
                     f"{which} for chain {envelope.chain_id!r:.40} from a peer that validates {roles}")
        return False
