"""Best-effort event feed over MQTT (aiomqtt, the maintained successor of asyncio-mqtt).

Topics (``prefix`` defaults to "govchain")::

    <prefix>/<chain_id>/blocks                one compact JSON block summary per block, qos 0
    <prefix>/nodes/<department>/status        compact JSON status, retained, qos 0
                                              {"department": ..., "up": true, ...}

The connection carries a last-will message ``{"department": ..., "up": false}``
retained on our own status topic, so when the node dies or its network goes
away the broker tells every subscriber, now and later. ``stop()`` publishes the
same message itself before its clean disconnect (a clean disconnect discards
the will).

The feed must never slow down or break consensus, so:

- ``publish_block`` / ``publish_status`` are plain functions: they encode the
  JSON, append to a bounded in-memory queue and return. They never block,
  never raise, and never touch the network.
- When the queue is full the OLDEST event is dropped (counted in
  ``dropped``): dashboards want the newest blocks and statuses. A
  ``collections.deque`` is used rather than ``asyncio.Queue`` because the
  latter cannot drop its oldest item or hand an event back after a failed
  send.
- One background task owns the connection: it connects, drains the queue,
  notices a lost connection (the broker died, restarted, or the network
  broke), and reconnects with capped exponential backoff and jitter. An event
  whose send failed is retried first after reconnecting.
- After every (re)connect the last status we published for each department is
  sent again, because the broker may have replaced it with our will (or lost
  it in a restart) while we were away.

Counters: ``published`` (events handed to the broker connection), ``dropped``
(queue overflow, invalid topic names, unencodable payloads, publishing after
stop, events still unsent when stop() gives up), ``reconnects`` (successful
connections after a lost one).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from typing import Any

import aiomqtt

from node.core.config import MqttConfig
from node.services.mqtt_link import BrokerLink, stop_task, work_or_stop

log = logging.getLogger(__name__)

_TOPIC_LEVEL_RE = re.compile(r"[A-Za-z0-9_.-]+")
_YIELD_EVERY = 64  # give the event loop a turn while draining a long queue


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


class EventPublisher:
    def __init__(
        self,
        *,
        host: str,
        department: str,
        port: int = 1883,
        topic_prefix: str = "govchain",
        client_id: str | None = None,
        queue_max: int = 10_000,
        keepalive_s: int = 30,
        timeout_s: float = 5.0,
        reconnect_initial_s: float = 0.25,
        reconnect_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if queue_max < 1:
            raise ValueError("queue_max must be at least 1")
        if not _TOPIC_LEVEL_RE.fullmatch(department):
            raise ValueError(f"department {department!r} cannot be an MQTT topic level")
        self.host = host
        self.port = port
        self.department = department
        self.topic_prefix = topic_prefix.rstrip("/")
        self.client_id = client_id or f"{self.topic_prefix.replace('/', '-')}-{department}-{os.getpid()}"
        self.queue_max = queue_max
        self._timeout_s = timeout_s

        self._queue: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self._inflight: tuple[str, bytes, bool] | None = None
        self._retained: dict[str, bytes] = {}  # last status sent per topic, re-sent on reconnect
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._link = BrokerLink(
            host=host, port=port, client_id=self.client_id, keepalive_s=keepalive_s, timeout_s=timeout_s,
            reconnect_initial_s=reconnect_initial_s, reconnect_max_s=reconnect_max_s, rng=rng,
            will=aiomqtt.Will(self.status_topic(department), self.will_payload, qos=1, retain=True))

        self.published = 0
        self.dropped = 0

    @classmethod
    def from_config(cls, config: MqttConfig, department: str, **overrides: Any) -> EventPublisher:
        kwargs: dict[str, Any] = dict(host=config.host, port=config.port, topic_prefix=config.topic_prefix,
                                      client_id=config.client_id, queue_max=config.queue_max)
        kwargs.update(overrides)
        return cls(department=department, **kwargs)

    # ------------------------------------------------------------------ topics

    def block_topic(self, chain_id: str) -> str:
        return f"{self.topic_prefix}/{chain_id}/blocks"

    def status_topic(self, department: str) -> str:
        return f"{self.topic_prefix}/nodes/{department}/status"

    @property
    def will_payload(self) -> bytes:
        return _encode({"department": self.department, "up": False})

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def reconnects(self) -> int:
        return self._link.reconnects

    @property
    def queued(self) -> int:
        return len(self._queue) + (self._inflight is not None)

    # ------------------------------------------------------------------ producer side

    def publish_block(self, chain_id: str, summary: Mapping[str, Any]) -> None:
        """Queue a block summary for <prefix>/<chain_id>/blocks. Never blocks or raises."""
        try:
            if not isinstance(chain_id, str) or not _TOPIC_LEVEL_RE.fullmatch(chain_id):
                raise ValueError(f"chain id {chain_id!r} cannot be an MQTT topic level")
            self._enqueue(self.block_topic(chain_id), _encode(dict(summary)), retain=False)
        except Exception:  # noqa: BLE001 - best effort by contract
            self.dropped += 1
            log.warning("dropping block event for chain %r", chain_id, exc_info=True)

    def publish_status(self, department: str, status: Mapping[str, Any]) -> None:
        """Queue a retained status for <prefix>/nodes/<department>/status.

        The payload is ``{"department": department, "up": true}`` updated with
        `status`. Never blocks or raises."""
        try:
            if not isinstance(department, str) or not _TOPIC_LEVEL_RE.fullmatch(department):
                raise ValueError(f"department {department!r} cannot be an MQTT topic level")
            payload = {"department": department, "up": True}
            payload.update(status)
            self._enqueue(self.status_topic(department), _encode(payload), retain=True)
        except Exception:  # noqa: BLE001 - best effort by contract
            self.dropped += 1
            log.warning("dropping status event for %r", department, exc_info=True)

    def _enqueue(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if self._stopped or self._stopping.is_set():
            self.dropped += 1
            return
        if len(self._queue) >= self.queue_max:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((topic, payload, retain))
        self._wakeup.set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the background connection task. Returns at once; events
        queued before start() are sent once connected."""
        if self._task is not None:
            raise RuntimeError("EventPublisher already started")
        if self._stopped:
            raise RuntimeError("EventPublisher cannot be restarted after stop()")
        self._task = asyncio.create_task(self._run(), name=f"mqtt-events-{self.department}")

    async def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued and ``{"up": false}`` for our department, then
        disconnect cleanly; give up after `timeout` seconds. Idempotent."""
        self._stopping.set()
        self._wakeup.set()
        task, self._task = self._task, None
        self._stopped = True
        await stop_task(task, timeout, "MQTT event publisher")
        # Whatever could not be sent before the deadline is lost: count it.
        unsent = len(self._queue) + (self._inflight is not None)
        if unsent:
            log.warning("MQTT event publisher stopped with %d unsent events", unsent)
        self.dropped += unsent
        self._queue.clear()
        self._inflight = None

    # ------------------------------------------------------------------ connection task

    async def _run(self) -> None:
        await self._link.run(self._stopping, self._drain, on_connect=self._resend_retained,
                             on_done=self._publish_down)

    async def _resend_retained(self, client: aiomqtt.Client) -> None:
        for topic, payload in list(self._retained.items()):
            await client.publish(topic, payload, qos=0, retain=True, timeout=self._timeout_s)

    async def _publish_down(self, client: aiomqtt.Client) -> None:
        await client.publish(self.status_topic(self.department), self.will_payload,
                             qos=1, retain=True, timeout=self._timeout_s)

    async def _drain(self, client: aiomqtt.Client) -> None:
        sent = 0
        while await work_or_stop(lambda: self._inflight is not None or bool(self._queue), self._stopping,
                                 self._wakeup):
            if self._inflight is None:
                self._inflight = self._queue.popleft()
            topic, payload, retain = self._inflight
            await client.publish(topic, payload, qos=0, retain=retain, timeout=self._timeout_s)
            self._inflight = None
            self.published += 1
            if retain:
                self._retained[topic] = payload
            sent += 1
            if sent % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
