"""Peer transport: one long-lived gRPC client stream to every peer.

Outbound: a bounded queue per peer address drained by a task that (re)opens
a `Peer.Deliver` stream, reconnecting with capped exponential backoff, so a
returning peer is back within about a second. A full queue (in messages or in
bytes) drops the newest message and counts it: PBFT retransmits what
matters, and a slow or absent peer must never block consensus nor fill our
memory. Inbound messages go to a callback that routes them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from node.pb import peer_pb2, peer_pb2_grpc

log = logging.getLogger("govchain.transport")

DELIVER_METHOD = "/govchain.v1.Peer/Deliver"
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
QUEUE_MESSAGES_OF_MAX_SIZE = 8  # a link's queue holds at most this many x message_bytes_max


class PeerLink:
    """The outbound stream to one peer address."""

    def __init__(self, address: str, queue_max: int, message_bytes_max: int,
                 dial: Callable[[str, list], grpc.aio.Channel] = grpc.aio.insecure_channel) -> None:
        self.address = address
        self._dial = dial
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_max)
        self.queued_bytes = 0
        self._queue_bytes_max = QUEUE_MESSAGES_OF_MAX_SIZE * message_bytes_max
        self.connected = False
        self.dropped = 0
        self.sent = 0
        self._message_bytes_max = message_bytes_max
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"peer {self.address}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def send(self, envelope: bytes) -> None:
        """A serialized PeerEnvelope: a broadcast is serialized once, not once per peer."""
        if self.queued_bytes + len(envelope) > self._queue_bytes_max:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(envelope)
        except asyncio.QueueFull:
            self.dropped += 1
            return
        self.queued_bytes += len(envelope)

    async def _outgoing(self):
        while True:
            envelope = await self.queue.get()
            self.queued_bytes -= len(envelope)
            self.sent += 1
            yield envelope

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        options = [("grpc.max_send_message_length", self._message_bytes_max),
                   ("grpc.max_receive_message_length", self._message_bytes_max),
                   # reconnect quickly: the default backoff grows to 120 s
                   ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX_S * 1000)),
                   ("grpc.keepalive_time_ms", 10_000)]
        while True:
            try:
                async with self._dial(self.address, options) as channel:
                    await asyncio.wait_for(channel.channel_ready(), timeout=BACKOFF_MAX_S * 2)
                    self.connected = True
                    backoff = BACKOFF_MIN_S
                    # Requests are already-serialized envelopes (no request serializer).
                    deliver = channel.stream_unary(DELIVER_METHOD,
                                                   response_deserializer=peer_pb2.DeliverAck.FromString)
                    await deliver(self._outgoing())
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, asyncio.TimeoutError, OSError) as exc:
                log.debug("peer %s unreachable: %s", self.address, exc)
            finally:
                self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)


class Transport:
    def __init__(self, queue_max: int, message_bytes_max: int,
                 credentials: grpc.ChannelCredentials | None = None, server_names: dict[str, str] | None = None) -> None:
        """With credentials, links speak mutual TLS and accept at each address
        only the certificate of server_names[address] (its department id)."""
        self._links: dict[str, PeerLink] = {}
        self._queue_max = queue_max
        self._message_bytes_max = message_bytes_max
        self._credentials = credentials
        self._server_names = server_names or {}

    def _dial(self, address: str, options: list) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(address, options=options)
        name = self._server_names.get(address, address.rpartition(":")[0])
        return grpc.aio.secure_channel(address, self._credentials,
                                       options=[*options, ("grpc.ssl_target_name_override", name)])

    def link(self, address: str) -> PeerLink:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = PeerLink(address, self._queue_max, self._message_bytes_max, self._dial)
            link.start()
        return link

    @property
    def links(self) -> dict[str, PeerLink]:
        """The links opened so far, by peer address (read-only, for metrics)."""
        return dict(self._links)

    def connected(self, address: str) -> bool:
        link = self._links.get(address)
        return link is not None and link.connected

    @property
    def dropped(self) -> int:
        return sum(link.dropped for link in self._links.values())

    async def stop(self) -> None:
        await asyncio.gather(*(link.stop() for link in self._links.values()))


class PeerService(peer_pb2_grpc.PeerServicer):
    """Thin edge: reads envelopes and hands each to `deliver`; no protocol logic."""

    def __init__(self, deliver: Callable[[peer_pb2.PeerEnvelope], None]) -> None:
        self._deliver = deliver

    async def Deliver(self, request_iterator, context):
        received = 0
        async for envelope in request_iterator:
            received += 1
            self._deliver(envelope)
        return peer_pb2.DeliverAck(messages_received=received)
