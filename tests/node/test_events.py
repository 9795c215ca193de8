"""EventPublisher against a real mosquitto (tests/mosquitto.py). No mocks: the
broker is started, stopped, restarted, and a publisher process is SIGKILLed."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import aiomqtt
import pytest

from node.core.config import MqttConfig
from node.services.events import EventPublisher
from tests.mosquitto import Mosquitto, free_port, mosquitto, mosquitto_factory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[2]
DEPT = "housing-registry"
STATUS_TOPIC = f"govchain/nodes/{DEPT}/status"


def make_publisher(broker: Mosquitto, **kwargs) -> EventPublisher:
    kwargs.setdefault("reconnect_initial_s", 0.05)
    kwargs.setdefault("reconnect_max_s", 0.2)
    kwargs.setdefault("timeout_s", 2.0)
    return EventPublisher(host=broker.host, port=broker.port, department=DEPT, **kwargs)


@contextlib.asynccontextmanager
async def subscriber(broker: Mosquitto, topic: str = "govchain/#"):
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"test-sub-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)
        yield client


async def receive(client: aiomqtt.Client, timeout: float = 5.0) -> aiomqtt.Message:
    return await asyncio.wait_for(client.messages.__anext__(), timeout)


async def receive_on(client: aiomqtt.Client, topic: str, timeout: float = 5.0) -> aiomqtt.Message:
    async def find() -> aiomqtt.Message:
        async for message in client.messages:
            if message.topic.value == topic:
                return message
        raise AssertionError("subscriber disconnected")
    return await asyncio.wait_for(find(), timeout)


async def eventually(condition, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def payload(message: aiomqtt.Message) -> dict:
    assert isinstance(message.payload, bytes)
    return json.loads(message.payload)


async def retained(broker: Mosquitto, topic: str, want: dict, timeout: float = 5.0) -> None:
    """Wait until a NEW subscriber to `topic` gets `want` as the retained message.

    `published` counts messages written to the publisher's socket; the broker
    may still be reading them when another connection subscribes, so poll."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        async with subscriber(broker, topic) as late:
            with contextlib.suppress(asyncio.TimeoutError):
                message = await receive(late, timeout=0.5)
                last = (message.retain, payload(message))
                if last == (True, want):
                    return
        await asyncio.sleep(0.02)
    raise AssertionError(f"retained message on {topic} is {last}, want {want}")


async def test_publisher_block_and_status_reach_subscriber(mosquitto: Mosquitto) -> None:
    async with subscriber(mosquitto) as sub:
        pub = make_publisher(mosquitto)
        await pub.start()
        pub.publish_block("catalog", {"height": 3, "hash": "ab12", "txs": 2})
        pub.publish_status(DEPT, {"chains": {"catalog": {"height": 3}}})

        block = await receive_on(sub, "govchain/catalog/blocks")
        assert payload(block) == {"height": 3, "hash": "ab12", "txs": 2}
        assert block.payload == b'{"height":3,"hash":"ab12","txs":2}'  # compact JSON
        assert block.qos == 0

        status = await receive_on(sub, STATUS_TOPIC)
        assert payload(status) == {"department": DEPT, "up": True, "chains": {"catalog": {"height": 3}}}
        assert pub.published == 2 and pub.dropped == 0 and pub.reconnects == 0

        await pub.stop()
        goodbye = await receive_on(sub, STATUS_TOPIC)
        assert payload(goodbye) == {"department": DEPT, "up": False}
    # The goodbye is retained: a late subscriber learns the node is down.
    async with subscriber(mosquitto, STATUS_TOPIC) as late:
        message = await receive(late)
        assert message.retain and payload(message) == {"department": DEPT, "up": False}


async def test_publisher_status_is_retained_for_late_subscriber(mosquitto: Mosquitto) -> None:
    pub = make_publisher(mosquitto, topic_prefix="gov/test")
    await pub.start()
    try:
        pub.publish_status(DEPT, {"height": 1})
        pub.publish_status(DEPT, {"height": 2})
        await eventually(lambda: pub.published == 2, what="two statuses published")
        await retained(mosquitto, f"gov/test/nodes/{DEPT}/status", {"department": DEPT, "up": True, "height": 2})
    finally:
        await pub.stop()


async def test_publisher_last_will_seen_when_process_is_killed(mosquitto: Mosquitto) -> None:
    script = textwrap.dedent(f"""
        import asyncio, sys
        from node.services.events import EventPublisher

        async def main():
            pub = EventPublisher(host="127.0.0.1", port={mosquitto.port}, department="{DEPT}")
            await pub.start()
            pub.publish_status("{DEPT}", {{"height": 7}})
            while pub.published < 1:
                await asyncio.sleep(0.01)
            print("ready", flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    async with subscriber(mosquitto, STATUS_TOPIC) as sub:
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 15)
            assert line == b"ready\n", process.stderr.read() if process.poll() is not None else line
            up = await receive(sub)
            assert payload(up) == {"department": DEPT, "up": True, "height": 7}

            process.send_signal(signal.SIGKILL)  # no clean DISCONNECT: the broker must send the will
            await asyncio.to_thread(process.wait, 5)

            down = await receive(sub)
            assert down.topic.value == STATUS_TOPIC
            assert payload(down) == {"department": DEPT, "up": False}
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
            process.stderr.close()
    async with subscriber(mosquitto, STATUS_TOPIC) as late:
        message = await receive(late)
        assert message.retain and payload(message) == {"department": DEPT, "up": False}


async def test_publisher_broker_down_at_start_drops_oldest_then_connects(mosquitto_factory) -> None:
    broker = mosquitto_factory(port=free_port())  # created, not started
    pub = make_publisher(broker, queue_max=5)
    assert not inspect.iscoroutinefunction(pub.publish_block)
    assert not inspect.iscoroutinefunction(pub.publish_status)
    await pub.start()
    try:
        for height in range(8):
            assert pub.publish_block("catalog", {"height": height}) is None
        assert pub.dropped == 3 and pub.queued == 5
        await asyncio.sleep(0.3)  # several failed connection attempts
        assert not pub.connected and pub.published == 0 and pub.queued == 5

        await asyncio.to_thread(broker.start)
        await eventually(lambda: pub.published == 5, what="queued blocks sent after the broker came up")
        assert pub.dropped == 3 and pub.reconnects == 0 and pub.connected

        pub.publish_status(DEPT, {"height": 7})
        await retained(broker, STATUS_TOPIC, {"department": DEPT, "up": True, "height": 7})
    finally:
        await pub.stop()


async def test_publisher_stop_returns_promptly_when_broker_never_came_up(mosquitto_factory) -> None:
    broker = mosquitto_factory(port=free_port())
    pub = make_publisher(broker, queue_max=2)
    await pub.start()
    pub.publish_block("catalog", {"height": 1})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pub.stop(timeout=2.0)
    assert loop.time() - started < 2.0  # the backoff sleep is interrupted, no connect is attempted
    assert pub.dropped == 1 and pub.queued == 0  # the unsent event is counted as dropped
    pub.publish_block("catalog", {"height": 2})  # after stop: counted, not raised
    assert pub.dropped == 2 and pub.published == 0


async def test_publisher_reconnects_after_broker_restart(mosquitto: Mosquitto) -> None:
    pub = make_publisher(mosquitto)
    await pub.start()
    try:
        pub.publish_status(DEPT, {"height": 1})
        await eventually(lambda: pub.published == 1 and pub.connected, what="first status")

        # persistence is off, so the restart also forgets the retained status
        await asyncio.to_thread(mosquitto.restart)
        await eventually(lambda: pub.reconnects == 1 and pub.connected, what="reconnect")

        # the last status is re-sent on reconnect, with no new publish_status call
        await retained(mosquitto, STATUS_TOPIC, {"department": DEPT, "up": True, "height": 1})
        async with subscriber(mosquitto, "govchain/+/blocks") as sub:
            pub.publish_block("catalog", {"height": 2})
            block = await receive_on(sub, "govchain/catalog/blocks")
            assert payload(block) == {"height": 2}
    finally:
        await pub.stop()


async def test_publisher_bad_input_is_dropped_not_raised(mosquitto: Mosquitto) -> None:
    pub = make_publisher(mosquitto)
    pub.publish_block("a/b", {"height": 1})  # would inject a topic level
    pub.publish_block("#", {"height": 1})
    pub.publish_status("", {"up": True})
    pub.publish_block("catalog", None)  # type: ignore[arg-type]  # not a mapping
    assert pub.dropped == 4 and pub.queued == 0
    pub.publish_block("catalog", {"at": object()})  # not JSON-serialisable: falls back to str()
    assert pub.queued == 1


async def test_publisher_from_config_uses_mqtt_table(mosquitto: Mosquitto) -> None:
    config = MqttConfig(host=mosquitto.host, port=mosquitto.port, topic_prefix="acme/gov", client_id="n1",
                        queue_max=3)
    pub = EventPublisher.from_config(config, DEPT, reconnect_initial_s=0.05)
    assert pub.client_id == "n1" and pub.queue_max == 3
    assert pub.block_topic("catalog") == "acme/gov/catalog/blocks"
    assert pub.status_topic(DEPT) == f"acme/gov/nodes/{DEPT}/status"
    async with subscriber(mosquitto, "acme/gov/#") as sub:
        await pub.start()
        pub.publish_block("catalog", {"height": 9})
        assert payload(await receive_on(sub, "acme/gov/catalog/blocks")) == {"height": 9}
        await pub.stop()
