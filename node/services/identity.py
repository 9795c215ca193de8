"""govchain.v1.Identity: the identity service's subject-tag endpoint, the
server half of the OPRF (docs/design.md, "Subject tags (OPRF)";
proto/govchain/v1/identity.proto is the contract).

Each call is checked in this order: who calls (a client certificate the
network CA issued, named in [identity] windows, not a validator's), then
the caller's rate limit (one token per call, valid or not, so garbage costs
as much as a real request), then the element. The service sees only
blinded elements: nothing it could log names a citizen.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from node.core.keys import KeyFileError
from node.identity.oprf import OprfKey, blind, derive_tag, evaluate, load_key, unblind
from node.net.tls import bound_key, peer_cert
from node.pb import identity_pb2, identity_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["Identity"].full_name
REFUSED = "subject-tag caller refused"  # its counter in the node's bad-input counts (govchain status)
LOG_INTERVAL_S = 60.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One token bucket per caller: `burst` tokens, refilled at
    `rate_per_minute`. take() -> 0 when a token was taken, else the seconds
    until one is there. Only callers that passed the allow-list get a
    bucket, so there are at most as many as [identity] windows."""

    def __init__(self, rate_per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, caller: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


def certificate_name(cert_pem: bytes) -> str | None:
    try:
        names = x509.load_pem_x509_certificate(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return None
    return str(names[0].value) if names else None


class IdentityService(identity_pb2_grpc.IdentityServicer):
    def __init__(self, key: OprfKey, windows: Iterable[str], rate_per_minute: int, burst: int,
                 clock: Callable[[], float] = time.monotonic, counters: dict[str, int] | None = None) -> None:
        self._key = key
        self._windows = frozenset(windows)
        self._buckets = TokenBuckets(rate_per_minute, burst, clock)
        self._clock = clock
        self._counters = counters if counters is not None else {}  # the node's bad-input counters (Status)
        self._logged_at: float | None = None

    def _refusal(self, context) -> tuple[str | None, str]:
        """(None, the caller's window name), or (why it may not call, "")."""
        cert = peer_cert(context)
        name = certificate_name(cert) if cert is not None else None
        if cert is None:
            return "no client certificate", ""
        if bound_key(cert) is not None:
            return f"certificate {name!r} is a validator node's; nodes do not tag, windows do", ""
        if name not in self._windows:
            return f"certificate {name!r} is not a window of this identity service ([identity] windows)", ""
        return None, name  # one bucket per window name: more certificates under one name buy no more calls

    async def Evaluate(self, request, context):
        why, caller = self._refusal(context)
        if why is not None:
            self._counters[REFUSED] = self._counters.get(REFUSED, 0) + 1
            now = self._clock()
            if self._logged_at is None or now - self._logged_at >= LOG_INTERVAL_S:  # a flood is not a log flood
                self._logged_at = now
                log.warning("subject-tag call refused from %s: %s (%d refused so far)", context.peer(), why,
                            self._counters[REFUSED])
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"{why}; only windows whose client certificate the network CA issued and whose "
                                f"name is in this node's [identity] windows may request subject tags")
        wait_s = self._buckets.take(caller)
        if wait_s:
            retry_ms = max(1, int(wait_s * 1000 + 0.999))
            context.set_trailing_metadata((("retry-after-ms", str(retry_ms)),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"rate limit of window {caller!r} used up ([identity] rate_per_minute, burst); "
                                f"retry in {retry_ms / 1000:.1f} s")
        try:
            evaluated = evaluate(self._key, request.blinded)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"blinded: {exc}")
        return identity_pb2.EvaluateReply(evaluated=evaluated)


def subject_tag(stub: identity_pb2_grpc.IdentityStub, id_number: str, *, timeout: float) -> tuple[bytes, bytes]:
    """A window's side of the OPRF: (tag, OPRF output) for an ID number; the service sees only a blinded
    element. IdNumberError for a mistyped number, ValueError for an answer that is not a group element."""
    state, blinded = blind(id_number)
    unblinded = unblind(state, stub.Evaluate(identity_pb2.EvaluateRequest(blinded=blinded), timeout=timeout).evaluated)
    return derive_tag(state.oprf_input, unblinded), unblinded


def register(host, server: grpc.aio.Server) -> str | None:
    """The subject-tag endpoint, on the identity service's node only: the one
    whose config has [identity] (node.services.CLIENT_PORT_SERVICES).
    KeyFileError when its key file cannot be used."""
    config = host.config.identity
    if config is None:
        return None
    try:
        key = load_key(config.oprf_key_file)
    except (KeyFileError, ValueError) as exc:
        raise KeyFileError(f"[identity] oprf_key_file {config.oprf_key_file}: {exc}; create one with "
                           f"`govchain keys generate-oprf --out FILE`") from exc
    identity_pb2_grpc.add_IdentityServicer_to_server(
        IdentityService(key, config.windows, config.rate_per_minute, config.burst, counters=host.bad_input), server)
    return SERVICE_NAME
