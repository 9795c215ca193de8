"""Notices (node/services/push.py) and `govchain notices` against a real
mosquitto (tests/mosquitto.py): offline citizens, broker restarts, a node
restart with notices still in its on-disk outbox."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest
from nacl.signing import SigningKey

from node.core.keys import generate_key_file
from node.services.push import NoticeError, OutboxFull, Pusher, client_id_for, open_notice, topic_id
from node.tools.notices_cli import notices
from tests.mosquitto import Mosquitto, mosquitto, mosquitto_factory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.asyncio

REPO = Path(__file__).resolve().parents[2]
DEPT = "human-resources"
ID_NUMBER = "110101199003071234"  # what must never travel: the tag below stands for this person
TAG = hashlib.sha256(b"test tag of " + ID_NUMBER.encode()).hexdigest()
TEXT = "You may now apply for unemployment benefit"
NOTICE = {"kind": "offer", "offer": "unemployment-benefit", "text": TEXT}


def make_pusher(broker: Mosquitto, **kwargs) -> Pusher:
    kwargs.setdefault("reconnect_initial_s", 0.05)
    kwargs.setdefault("reconnect_max_s", 0.2)
    kwargs.setdefault("timeout_s", 2.0)
    kwargs.setdefault("signing_key", SigningKey.generate())
    return Pusher(host=broker.host, port=broker.port, department=DEPT, **kwargs)


async def open_session(broker: Mosquitto, citizen: SigningKey, tag: str = TAG) -> None:
    """The citizen's app subscribes once with its persistent session, then goes offline."""
    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id_for(bytes(citizen.verify_key)),
                              clean_session=False) as client:
        await client.subscribe(f"govchain/notices/{topic_id(tag)}", qos=1)


async def next_notice(citizen: SigningKey, broker: Mosquitto, tag: str = TAG, timeout: float = 10.0):
    """Reconnect with the persistent session and take the first notice."""
    stream = notices(citizen, tag, broker.host, broker.port)
    try:
        return await asyncio.wait_for(stream.__anext__(), timeout)
    finally:
        await stream.aclose()


@contextlib.asynccontextmanager
async def eavesdropper(broker: Mosquitto):
    """What anyone allowed to subscribe to everything sees: topics and raw payloads."""
    seen: list[tuple[str, bytes, int]] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"spy-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe("govchain/#", qos=1)

        async def record() -> None:
            async for message in client.messages:
                seen.append((message.topic.value, bytes(message.payload), message.qos))

        task = asyncio.create_task(record())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_notice_to_offline_citizen_is_sealed_on_a_tagless_topic_and_arrives_on_reconnect(
        mosquitto: Mosquitto) -> None:
    citizen, stranger = SigningKey.generate(), SigningKey.generate()
    node_key = SigningKey.generate()
    await open_session(mosquitto, citizen)
    pusher = make_pusher(mosquitto, signing_key=node_key)
    await pusher.start()
    try:
        async with eavesdropper(mosquitto) as seen:
            digest = await pusher.push_notice(tag=TAG, recipient_key=bytes(citizen.verify_key), notice=NOTICE)
            await pusher.wait_delivered(digest, timeout=10)
            assert pusher.pending == 0 and pusher.published == 1
            for _ in range(500):
                if seen:
                    break
                await asyncio.sleep(0.01)
        [(topic, payload, qos)] = seen
    finally:
        await pusher.stop()

    assert topic == "govchain/notices/" + hashlib.sha256(b"govchain:v1:notice-topic:" + TAG.encode()).hexdigest()
    assert TAG not in topic and ID_NUMBER not in topic
    assert qos == 1
    assert digest == hashlib.sha256(payload).digest()
    for secret in (TEXT.encode(), b"unemployment", TAG.encode(), ID_NUMBER.encode(), DEPT.encode()):
        assert secret not in payload
    with pytest.raises(NoticeError, match="not sealed to this app key"):
        open_notice(stranger, TAG, payload)
    with pytest.raises(NoticeError, match="another topic"):
        open_notice(citizen, hashlib.sha256(b"someone else").hexdigest(), payload)

    got = await next_notice(citizen, mosquitto)  # the citizen comes back online: the broker kept it
    assert not isinstance(got, NoticeError), got
    assert got.notice == NOTICE and got.department == DEPT
    assert got.digest == digest.hex() and got.signer == bytes(node_key.verify_key).hex()


async def test_forged_or_tampered_notice_is_refused(mosquitto: Mosquitto) -> None:
    from nacl.public import SealedBox

    citizen = SigningKey.generate()
    pusher = make_pusher(mosquitto)
    digest = await pusher.push_notice(tag=TAG, recipient_key=bytes(citizen.verify_key), notice=NOTICE)
    assert pusher.pending == 1  # never started: still in the outbox
    plain = SealedBox(citizen.to_curve25519_private_key()).decrypt(next(iter(pusher._pending.values())).sealed)
    envelope = json.loads(plain)
    envelope["notice"]["text"] = "Your benefit was cancelled"  # anyone can seal to a public key ...
    forged = SealedBox(citizen.verify_key.to_curve25519_public_key()).encrypt(json.dumps(envelope).encode())
    with pytest.raises(NoticeError, match="signature does not verify"):  # ... not sign as the department
        open_notice(citizen, TAG, forged)
    assert len(digest) == 32
    await pusher.stop(timeout=0.1)


async def test_broker_restart_with_an_unacknowledged_notice_still_delivers_it(mosquitto_factory) -> None:
    broker = mosquitto_factory(persistence=True).start()
    citizen = SigningKey.generate()
    await open_session(broker, citizen)
    pusher = make_pusher(broker)
    await pusher.start()
    try:
        for _ in range(500):
            if pusher.connected:
                break
            await asyncio.sleep(0.01)
        assert pusher.connected
        broker.stop()  # clean stop: the broker saves the citizen's session
        digest = await pusher.push_notice(tag=TAG, recipient_key=bytes(citizen.verify_key), notice=NOTICE)
        await asyncio.sleep(0.5)  # several publish attempts and reconnects fail meanwhile
        assert pusher.pending == 1 and not pusher.delivered(digest)
        broker.start()
        await pusher.wait_delivered(digest, timeout=15)
    finally:
        await pusher.stop()
    got = await next_notice(citizen, broker)
    assert not isinstance(got, NoticeError), got
    assert got.digest == digest.hex() and got.notice == NOTICE


async def test_node_restart_republishes_the_on_disk_outbox_byte_for_byte(mosquitto_factory, tmp_path) -> None:
    broker = mosquitto_factory(persistence=True).start()
    citizen = SigningKey.generate()
    await open_session(broker, citizen)
    broker.stop()
    node_key = SigningKey.generate()
    outbox = tmp_path / "outbox"
    first = make_pusher(broker, signing_key=node_key, outbox_dir=outbox)
    await first.start()
    digest = await first.push_notice(tag=TAG, recipient_key=bytes(citizen.verify_key), notice=NOTICE)
    [stored] = list(outbox.iterdir())
    assert hashlib.sha256(stored.read_bytes()).digest() == digest
    await first.stop(timeout=0.2)  # the broker is down: the notice stays on disk for the next start

    broker.start()
    second = make_pusher(broker, signing_key=node_key, outbox_dir=outbox)
    assert second.pending == 1
    await second.start()
    try:
        await second.wait_delivered(digest, timeout=15)
        assert list(outbox.iterdir()) == []
    finally:
        await second.stop()
    got = await next_notice(citizen, broker)
    assert not isinstance(got, NoticeError), got
    assert got.digest == digest.hex()  # the digest the case recorded on chain still matches


async def test_bad_input_and_a_full_outbox_are_refused(mosquitto: Mosquitto) -> None:
    citizen = bytes(SigningKey.generate().verify_key)
    pusher = make_pusher(mosquitto, outbox_max=1)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await pusher.push_notice(tag=ID_NUMBER, recipient_key=citizen, notice=NOTICE)
    with pytest.raises(ValueError, match="32-byte Ed25519"):
        await pusher.push_notice(tag=TAG, recipient_key=citizen[:31], notice=NOTICE)
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        await pusher.push_notice(tag=TAG, recipient_key=bytes(32 * [0xFF]), notice=NOTICE)
    with pytest.raises(ValueError, match="at most 16384"):
        await pusher.push_notice(tag=TAG, recipient_key=citizen, notice={"text": "x" * 20_000})
    with pytest.raises(ValueError, match="JSON object"):
        await pusher.push_notice(tag=TAG, recipient_key=citizen, notice=["a"])  # type: ignore[arg-type]
    await pusher.push_notice(tag=TAG, recipient_key=citizen, notice=NOTICE)
    with pytest.raises(OutboxFull, match="1 notices wait for the MQTT broker"):
        await pusher.push_notice(tag=TAG, recipient_key=citizen, notice=NOTICE)
    await pusher.stop(timeout=0.1)


def govchain(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)


async def test_govchain_notices_prints_a_notice_sent_while_it_was_not_running(mosquitto: Mosquitto,
                                                                             tmp_path) -> None:
    key_file = tmp_path / "citizen.key"
    citizen = generate_key_file(key_file)
    broker = f"{mosquitto.host}:{mosquitto.port}"
    first = await asyncio.to_thread(govchain, "notices", "--key", str(key_file), "--broker", broker,
                                    "--tag", TAG, "--wait", "1")
    assert first.returncode == 0 and first.stdout == "", first.stderr  # the session exists, nothing yet

    pusher = make_pusher(mosquitto)
    await pusher.start()
    try:
        digest = await pusher.push_notice(tag=TAG, recipient_key=bytes(citizen.verify_key), notice=NOTICE)
        await pusher.wait_delivered(digest, timeout=10)
    finally:
        await pusher.stop()
    out = await asyncio.to_thread(govchain, "notices", "--key", str(key_file), "--broker", broker,
                                  "--tag", TAG, "--json", "--count", "1", "--wait", "30")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    assert json.loads(line) == {"digest": digest.hex(), "department": DEPT,
                                "signer": bytes(pusher._key.verify_key).hex(), "notice": NOTICE}

    bad = await asyncio.to_thread(govchain, "notices", "--key", str(key_file), "--broker", broker,
                                  "--tag", ID_NUMBER, "--wait", "1")
    assert bad.returncode == 2 and "64 lowercase hex" in bad.stderr
