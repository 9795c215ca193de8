"""The MQTT event feed with a real mosquitto and real node processes."""
from __future__ import annotations

import json
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest

from node.core import codec

from node.tools import localnet
from node.pb import client_pb2

from .conftest import make_tx, submit_batch

pytestmark = pytest.mark.e2e


class Subscriber:
    """A paho client (own network thread) that records every message on govchain/#."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"e2e-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe("govchain/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "no SUBACK from mosquitto"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[dict, bool]]:
        with self._lock:
            return [(payload, retain) for t, payload, retain in self.messages if t == topic]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_mqtt_block_summaries_retained_status_and_last_will(net_factory, mosquitto, sender):
    net = net_factory(nodes=4, chains=("demo",), mqtt_port=mosquitto.port)
    status_topic = {s.department: f"govchain/nodes/{s.department}/status" for s in net.specs}

    # Subscribed after the nodes came up: the status each published at start is retained for us.
    sub = Subscriber(mosquitto.host, mosquitto.port)
    try:
        def all_up():
            return all(any(p.get("up") is True and p["department"] == d for p, _ in sub.on(t))
                       for d, t in status_topic.items())

        localnet.wait_until(all_up, 15, what=f"retained statuses: {sub.messages}")
        for department, topic in status_topic.items():
            payload, retained = sub.on(topic)[0]
            assert retained, f"status of {department} was not retained"
            assert payload["department"] == department and payload["up"] is True
            assert "demo" in payload["chains"]

        for i in range(3):
            assert submit_batch(net.client(i), [make_tx(sender, "demo", f"m{i}", "1") for _ in range(2)]
                                ).results[0].committed
        height = net.wait_same_head("demo", range(4), at_least=3)["height"]

        def summaries():
            by_height: dict[int, list[dict]] = {}
            for payload, retained in sub.on("govchain/demo/blocks"):
                assert not retained
                by_height.setdefault(payload["height"], []).append(payload)
            return by_height if all(len(by_height.get(h, ())) >= 4 for h in range(1, height + 1)) else None

        by_height = localnet.wait_until(summaries, 15, what=f"block summaries from all 4 nodes: {sub.messages}")
        for h in range(1, height + 1):
            header = codec.from_proto(net.client(0).GetBlock(
                client_pb2.GetBlockRequest(chain_id="demo", height=h), timeout=10).header)
            for summary in by_height[h]:  # every node published the same block
                assert summary["chain"] == "demo" and summary["hash"] == header.hash.hex()
                assert summary["state_root"] == header.state_root.hex()
                assert summary["txs"] == summary["ok"] == 2

        # kill -9: the broker publishes the node's last will, retained.
        victim = net.specs[3]
        assert net.kill(3) == "killed"
        localnet.wait_until(lambda: any(p == {"department": victim.department, "up": False}
                                        for p, _ in sub.on(status_topic[victim.department])),
                            15, what=f"last will of {victim.department}")
    finally:
        sub.close()

    # A newcomer sees the will as the retained status of the dead node, and the others still up.
    late = Subscriber(mosquitto.host, mosquitto.port)
    try:
        localnet.wait_until(lambda: len({t for t, _, r in late.messages if r}) >= 4, 10, what="retained statuses")
        assert late.on(status_topic[victim.department])[-1] == ({"department": victim.department, "up": False}, True)
        for spec in net.specs[:3]:
            assert late.on(status_topic[spec.department])[-1][0]["up"] is True
    finally:
        late.close()
