"""One broker connection owned by a background task, shared by the event
feed (node/services/events.py) and the notice pusher (node/services/push.py);
docs/design.md, "Push notices and offers".

`BrokerLink.run(stopping, drain, ...)` connects, calls `on_connect(client)`,
then runs `drain(client)` next to a watcher that notices a lost connection
(the broker died, restarted, or the network broke); on a loss it reconnects
with capped exponential backoff and jitter. `drain` returns only when
`stopping` is set and it has nothing left to send; then `on_done(client)`
runs (e.g. the event feed's own "up": false) before the clean disconnect.
What to retry after a reconnect is the caller's: the link owns the socket,
never the messages.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiomqtt

log = logging.getLogger(__name__)

Step = Callable[[aiomqtt.Client], Awaitable[None]]


class BrokerLink:
    def __init__(self, *, host: str, port: int, client_id: str, clean_session: bool = True,
                 will: aiomqtt.Will | None = None, keepalive_s: int = 30, timeout_s: float = 5.0,
                 reconnect_initial_s: float = 0.25, reconnect_max_s: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._clean_session = clean_session
        self._will = will
        self._keepalive_s = keepalive_s
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = max(reconnect_max_s, reconnect_initial_s)
        self._rng = rng or random.Random()
        self.connected = False
        self.reconnects = 0  # successful connections after a lost one

    def client(self) -> aiomqtt.Client:
        return aiomqtt.Client(self.host, self.port, identifier=self.client_id, keepalive=self._keepalive_s,
                              timeout=self.timeout_s, clean_session=self._clean_session, will=self._will)

    async def run(self, stopping: asyncio.Event, drain: Step, *, on_connect: Step | None = None,
                  on_done: Step | None = None) -> None:
        delay = self._reconnect_initial_s
        ever_connected = False
        failures = 0
        while not stopping.is_set():
            try:
                async with self.client() as client:
                    self.connected = True
                    if ever_connected:
                        self.reconnects += 1
                    ever_connected = True
                    log.info("connected to MQTT broker %s:%d as %s", self.host, self.port, self.client_id)
                    failures = 0
                    delay = self._reconnect_initial_s
                    if on_connect is not None:
                        await on_connect(client)
                    await self._session(client, drain)
                    # _session returns only when stopping and drained.
                    if on_done is not None:
                        await on_done(client)
                    return
            except aiomqtt.MqttError as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "MQTT broker %s:%d unavailable (%s); retrying with backoff",
                        self.host, self.port, exc)
            except Exception:  # noqa: BLE001 - a link must not die on a surprise
                failures += 1
                log.exception("unexpected error on the MQTT link %s; reconnecting", self.client_id)
            finally:
                self.connected = False
            if stopping.is_set():
                return
            sleep_s = delay * self._rng.uniform(0.5, 1.0)
            delay = min(delay * 2, self._reconnect_max_s)
            try:
                await asyncio.wait_for(stopping.wait(), timeout=sleep_s)
            except asyncio.TimeoutError:
                pass

    @staticmethod
    async def _session(client: aiomqtt.Client, drain: Step) -> None:
        watcher = asyncio.create_task(_watch(client))
        drainer = asyncio.create_task(drain(client))
        try:
            await asyncio.wait({watcher, drainer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, drainer):
                task.cancel()
            await asyncio.gather(watcher, drainer, return_exceptions=True)
        if drainer.done() and not drainer.cancelled():
            drainer.result()  # re-raises a failed publish; a normal return means stopping
            return
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            raise watcher.exception()  # type: ignore[misc]
        raise aiomqtt.MqttError("connection to the broker was lost")


async def work_or_stop(ready: Callable[[], bool], stopping: asyncio.Event, wakeup: asyncio.Event) -> bool:
    """A drain's wait: True once ready() (something to send), False when
    stopping with nothing to send. Producers set `wakeup` after adding work."""
    while not ready():
        if stopping.is_set():
            return False
        wakeup.clear()
        await wakeup.wait()
    return True


async def _watch(client: aiomqtt.Client) -> None:
    """Return or raise as soon as the connection goes away. The publishing
    links subscribe to nothing, so the iterator only ends by disconnection."""
    async for _ in client.messages:
        pass


async def stop_task(task: asyncio.Task | None, timeout: float, what: str) -> None:
    """Wait up to `timeout` for a link's task to finish, then cancel it."""
    if task is None:
        return
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("%s did not stop within %.1fs; abandoning the connection", what, timeout)
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    elif not task.cancelled() and task.exception() is not None:  # pragma: no cover - run() catches all
        log.error("%s failed", what, exc_info=task.exception())
