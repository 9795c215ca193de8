"""Proactive push (主动推送): notices sealed to a citizen's app key, published
QoS 1 over MQTT (docs/design.md, "Push notices and offers").

    pusher = Pusher(host=..., port=..., department=..., signing_key=node_key, outbox_dir=data_dir / "notices")
    await pusher.start()
    digest = await pusher.push_notice(tag=tag_hex, recipient_key=app_key, notice={"case_id": ..., ...})

Topic ``<prefix>/notices/<topic id>``, topic id = hex SHA-256("govchain:v1:notice-topic:" || tag): neither the
tag nor anything about the citizen appears in a topic. The payload is a nacl SealedBox to the X25519 form of
the citizen's Ed25519 app key, holding canonical JSON::

    {"v": 1, "topic": <topic id>, "department": <sender>, "signer": <64 hex node key>,
     "notice": {...}, "signature": <128 hex Ed25519 over NOTICE_SIG_DOMAIN || canonical JSON of the rest>}

so only the app key opens it, the citizen sees which department's key sent it, and a notice sealed for one
topic cannot be replayed onto another. The digest the item chain records (`record_notice`) is SHA-256 of the
sealed bytes, the exact payload on the wire: the citizen's client recomputes it.

Delivery: QoS 1 to a broker that keeps the citizen's persistent session (clean_session false) and stores
what arrives while the citizen is offline. The node keeps every notice in its outbox until the broker
acknowledges it (PUBACK), re-publishing after reconnects, in order, one in flight at a time. The outbox is
bounded (`outbox_max`; `push_notice` raises OutboxFull rather than dropping a notice) and, with outbox_dir,
on disk: each notice is fsynced before push_notice returns and removed after its PUBACK, so a notice
survives broker restarts and node crashes alike, and after a crash it is re-published byte for byte (the
digest on chain still matches). Delivery is at least once: a PUBACK lost with the connection means the
notice is sent again; clients drop a digest they have already shown.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from node.core.canonical import canonical_json
from node.core.crypto import open_with_signing_key
from node.core.config import MqttConfig
from node.services.mqtt_link import BrokerLink, stop_task, work_or_stop

log = logging.getLogger(__name__)

TOPIC_DOMAIN = b"govchain:v1:notice-topic:"
SIG_DOMAIN = b"govchain:v1:notice:"
CLIENT_ID_DOMAIN = b"govchain:v1:notice-client:"
NOTICE_BYTES_MAX = 16 * 1024  # the canonical JSON of one notice (the sealed payload adds ~400 bytes)
OUTBOX_SUFFIX = ".notice"
_TAG_RE = re.compile(r"[0-9a-f]{64}")
_OUTBOX_NAME_RE = re.compile(r"([0-9]{20})-([0-9a-f]{64})\.notice")
_ENVELOPE_FIELDS = ("department", "notice", "signature", "signer", "topic", "v")


class OutboxFull(Exception):
    """The outbox holds outbox_max notices the broker has not acknowledged: try again later."""


class NoticeError(Exception):
    """A payload that is not a notice for this key and tag."""


def check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
        raise ValueError("tag must be a subject tag: 64 lowercase hex digits (node/identity/oprf.py)")
    return tag


def topic_id(tag: str) -> str:
    return hashlib.sha256(TOPIC_DOMAIN + check_tag(tag).encode()).hexdigest()


def notice_topic(prefix: str, tag: str) -> str:
    return f"{prefix.rstrip('/')}/notices/{topic_id(tag)}"


def client_id_for(app_key: bytes) -> str:
    """The citizen's persistent-session client id: stable for a key, and not the key itself."""
    return "govchain-notices-" + hashlib.sha256(CLIENT_ID_DOMAIN + app_key).hexdigest()[:32]


def digest_of(sealed: bytes) -> bytes:
    return hashlib.sha256(sealed).digest()


def _curve_public(ed25519_key: bytes) -> PublicKey:
    if not isinstance(ed25519_key, bytes) or len(ed25519_key) != 32:
        raise ValueError("recipient_key must be the citizen's 32-byte Ed25519 app key")
    try:
        return VerifyKey(ed25519_key).to_curve25519_public_key()
    except (CryptoError, ValueError, RuntimeError) as exc:
        raise ValueError(f"recipient_key is not an Ed25519 public key ({exc})") from None


def _signed_part(envelope: dict) -> bytes:
    return SIG_DOMAIN + canonical_json({k: v for k, v in envelope.items() if k != "signature"})


def seal_notice(signing_key: SigningKey, department: str, *, tag: str, recipient_key: bytes,
                notice: dict) -> bytes:
    """The sealed payload for one notice (raises ValueError on bad input)."""
    recipient = _curve_public(recipient_key)
    if not isinstance(notice, dict):
        raise ValueError("notice must be a JSON object")
    try:
        size = len(canonical_json(notice))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"notice is not JSON: {exc}") from None
    if size > NOTICE_BYTES_MAX:
        raise ValueError(f"notice is {size} bytes of JSON; at most {NOTICE_BYTES_MAX} (NOTICE_BYTES_MAX)")
    envelope: dict[str, Any] = {"v": 1, "topic": topic_id(tag), "department": department,
                                "signer": bytes(signing_key.verify_key).hex(), "notice": notice}
    envelope["signature"] = signing_key.sign(_signed_part(envelope)).signature.hex()
    return SealedBox(recipient).encrypt(canonical_json(envelope))


@dataclass(frozen=True)
class OpenedNotice:
    digest: str  # hex SHA-256 of the sealed payload: what the item chain records
    department: str
    signer: str
    notice: dict

    def to_json(self) -> dict:
        return {"digest": self.digest, "department": self.department, "signer": self.signer, "notice": self.notice}


def open_notice(app_key: SigningKey, tag: str, sealed: bytes) -> OpenedNotice:
    """Unseal with the citizen's app key and check the envelope: its topic is
    this tag's and its signature verifies. Raises NoticeError."""
    try:
        plain = open_with_signing_key(app_key, sealed)
    except CryptoError:
        raise NoticeError("the payload is not sealed to this app key") from None
    try:
        envelope = json.loads(plain)
    except ValueError:
        raise NoticeError("the sealed payload is not JSON") from None
    if not isinstance(envelope, dict) or sorted(envelope) != sorted(_ENVELOPE_FIELDS) or envelope["v"] != 1:
        raise NoticeError(f"the sealed payload is not a v1 notice envelope (fields {', '.join(_ENVELOPE_FIELDS)})")
    if envelope["topic"] != topic_id(tag):
        raise NoticeError("the notice was sealed for another topic (another subject tag)")
    try:
        VerifyKey(bytes.fromhex(envelope["signer"])).verify(_signed_part(envelope),
                                                             bytes.fromhex(envelope["signature"]))
    except (BadSignatureError, ValueError, TypeError):
        raise NoticeError("the notice's signature does not verify") from None
    if not isinstance(envelope["notice"], dict) or not isinstance(envelope["department"], str):
        raise NoticeError("the notice envelope has a bad department or notice")
    return OpenedNotice(digest_of(sealed).hex(), envelope["department"], envelope["signer"], envelope["notice"])


@dataclass
class _Outgoing:
    topic_id: str
    sealed: bytes
    digest: bytes
    path: Path | None


class Pusher:
    def __init__(self, *, host: str, department: str, signing_key: SigningKey, port: int = 1883,
                 topic_prefix: str = "govchain", client_id: str | None = None, outbox_dir: Path | None = None,
                 outbox_max: int = 10_000, **link: Any) -> None:
        if outbox_max < 1:
            raise ValueError("outbox_max must be at least 1")
        self.department = department
        self.topic_prefix = topic_prefix.rstrip("/")
        self.outbox_max = outbox_max
        self._key = signing_key
        self._outbox_dir = outbox_dir
        self._link = BrokerLink(host=host, port=port, client_id=client_id or f"{department}-notices",
                                clean_session=True, **link)
        self._pending: OrderedDict[int, _Outgoing] = OrderedDict()
        self._waiters: dict[bytes, list[asyncio.Future]] = {}
        self._next_seq = 0
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.published = 0  # notices the broker acknowledged
        if outbox_dir is not None:
            self._load_outbox(outbox_dir)

    @classmethod
    def from_config(cls, config: MqttConfig, department: str, signing_key: SigningKey,
                    outbox_dir: Path | None, **overrides: Any) -> Pusher:
        client_id = f"{config.client_id}-notices" if config.client_id else None
        kwargs: dict[str, Any] = dict(host=config.host, port=config.port, topic_prefix=config.topic_prefix,
                                      client_id=client_id, outbox_max=config.queue_max, outbox_dir=outbox_dir)
        kwargs.update(overrides)
        return cls(department=department, signing_key=signing_key, **kwargs)

    # ---- outbox ---------------------------------------------------------------

    def _load_outbox(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(directory.iterdir()):
            match = _OUTBOX_NAME_RE.fullmatch(path.name)
            if match is None:  # a temp file of a write the crash interrupted: never acknowledged to a caller
                path.unlink(missing_ok=True)
                continue
            sealed = path.read_bytes()
            seq = int(match.group(1))
            self._pending[seq] = _Outgoing(match.group(2), sealed, digest_of(sealed), path)
            self._next_seq = seq + 1
        if self._pending:
            log.info("notice outbox %s: %d notices to re-publish", directory, len(self._pending))

    @staticmethod
    def _write(item: _Outgoing) -> None:
        assert item.path is not None
        tmp = item.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(item.sealed)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, item.path)
        fd = os.open(item.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def pending(self) -> int:
        """Notices not yet acknowledged by the broker."""
        return len(self._pending)

    @property
    def connected(self) -> bool:
        return self._link.connected

    def topic(self, tag: str) -> str:
        return notice_topic(self.topic_prefix, tag)

    # ---- the interface (docs/design.md, "Push notices and offers") -----------

    async def push_notice(self, *, tag: str, recipient_key: bytes, notice: dict) -> bytes:
        """Seal `notice` to `recipient_key`, keep it in the outbox (on disk when
        configured) and return SHA-256 of the sealed bytes. Returns before the
        broker has it: `wait_delivered(digest)` waits for the PUBACK. Raises
        ValueError on bad input, OutboxFull when outbox_max notices are pending."""
        if self._stopping.is_set():
            raise RuntimeError("the pusher is stopped")
        sealed = seal_notice(self._key, self.department, tag=tag, recipient_key=recipient_key, notice=notice)
        if len(self._pending) >= self.outbox_max:
            raise OutboxFull(f"{len(self._pending)} notices wait for the MQTT broker "
                             f"({self._link.host}:{self._link.port}); try again later")
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        path = self._outbox_dir / f"{seq:020d}-{topic_id(tag)}{OUTBOX_SUFFIX}" if self._outbox_dir else None
        item = _Outgoing(topic_id(tag), sealed, digest_of(sealed), path)
        if path is not None:
            await asyncio.to_thread(self._write, item)
        self._pending[seq] = item
        self._wakeup.set()
        return item.digest

    def delivered(self, digest: bytes) -> bool:
        """True once no notice with this digest waits in the outbox."""
        return all(item.digest != digest for item in self._pending.values())

    async def wait_delivered(self, digest: bytes, timeout: float | None = None) -> None:
        """Wait until the broker acknowledged the notice (asyncio.TimeoutError after `timeout`)."""
        if self.delivered(digest):
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(digest, []).append(future)
        await asyncio.wait_for(future, timeout)

    # ---- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None or self._stopping.is_set():
            raise RuntimeError("a Pusher starts once")
        self._task = asyncio.create_task(self._link.run(self._stopping, self._drain), name="mqtt-notices")

    async def stop(self, timeout: float = 2.0) -> None:
        """Publish what is pending for up to `timeout` seconds, then disconnect.
        What is left stays in the on-disk outbox for the next start (without
        one, it is lost and logged: the case on chain still has its notice digest)."""
        self._stopping.set()
        self._wakeup.set()
        task, self._task = self._task, None
        await stop_task(task, timeout, "MQTT notice pusher")
        if self._pending:
            where = f"kept in {self._outbox_dir} for the next start" if self._outbox_dir else "LOST (no outbox_dir)"
            log.warning("MQTT notice pusher stopped with %d unacknowledged notices: %s", len(self._pending), where)

    async def _drain(self, client: aiomqtt.Client) -> None:
        while await work_or_stop(lambda: bool(self._pending), self._stopping, self._wakeup):
            seq, item = next(iter(self._pending.items()))
            # qos=1: returns once the broker's PUBACK arrived; raises (and the link reconnects) otherwise.
            await client.publish(f"{self.topic_prefix}/notices/{item.topic_id}", item.sealed, qos=1,
                                 timeout=self._link.timeout_s)
            del self._pending[seq]
            if item.path is not None:
                item.path.unlink(missing_ok=True)
            self.published += 1
            if self.delivered(item.digest):
                for future in self._waiters.pop(item.digest, ()):
                    if not future.done():
                        future.set_result(None)
