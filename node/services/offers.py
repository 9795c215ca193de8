"""Proactive offers: follow a chain's committed blocks and push an offer to
the subject of every matching record, without the citizen asking
(docs/design.md, "Push notices and offers").

One watcher per `[[offers]]` table of node.toml (OfferConfig). It reads the
chain's durable blocks from this node's ledger in height order; a
transaction matches when its receipt is OK, its contract and method are the
offer's, and its JSON payload has the `where` field values. The subject is
the payload's `tag_field`; the recipient is the app key the authn chain of
this node binds to that tag (the most recent of the tag's authentication
events that is not revoked and whose key is still bound to the tag; an
expired binding still names the citizen's key, which is all sealing needs).
A subject with no such key gets no offer (counted in `unbound`).

The notice is {"kind": "offer", "offer": id, "notice": text id,
"source": {"chain", "height", "tx_id"}}: no field of the record itself.

Progress is kept in DATA_DIR/offers/<id>.height, written after the notices of
a block are in the pusher's on-disk outbox, so a crash re-pushes at most that
block's offers (at least once; clients drop a digest they already showed, and
an app can drop a repeated source.tx_id). A new offer starts at the chain's
durable height when it is first configured: it does not offer for history.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from node.chain.chain_node import ChainNode
from node.core import codec
from node.core.config import OfferConfig
from node.core.receipts import OK
from node.services.push import OutboxFull, Pusher, check_tag

log = logging.getLogger(__name__)

AUTHN_CHAIN = "authn"
OUTBOX_FULL_RETRY_S = 1.0
_TAG_EVENTS_MAX = 1000  # authentication events of one tag read to find its app key


def bound_app_key(authn: ChainNode, tag: str) -> bytes | None:
    """The app key the authn chain's durable state binds to `tag`, or None."""
    prefix = b"tag/" + tag.encode() + b"/"
    best: dict | None = None
    for _, value in authn.state.scan("authn", prefix, after=None, limit=_TAG_EVENTS_MAX):
        event = json.loads(value)
        if event["revoked"] is None and (best is None or event["height"] > best["height"]):
            best = event
    if best is None:
        return None
    binding = authn.state.get("authn", b"binding/" + best["app_key"].encode())
    if binding is None or json.loads(binding)["tag"] != tag:
        return None  # the key was bound to another subject since
    return bytes.fromhex(best["app_key"])


class OfferWatcher:
    def __init__(self, offer: OfferConfig, chain: ChainNode, authn: ChainNode, pusher: Pusher,
                 cursor_dir: Path) -> None:
        self.offer = offer
        self._chain = chain
        self._authn = authn
        self._pusher = pusher
        self._cursor_path = cursor_dir / f"{offer.id}.height"
        self.pushed = 0  # offers handed to the pusher
        self.unbound = 0  # matching records whose subject has no app key bound
        self.bad = 0  # matching contract/method whose payload names no valid tag

    def _load_cursor(self) -> int:
        try:
            return int(self._cursor_path.read_text())
        except FileNotFoundError:
            height = self._chain.durable_height
            self._save_cursor(height)
            return height

    def _save_cursor(self, height: int) -> None:
        self._cursor_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(str(height))
        os.replace(tmp, self._cursor_path)

    def matches(self, tx) -> str | None:
        """The subject tag of a matching transaction, else None."""
        offer = self.offer
        if tx.contract != offer.contract or tx.method != offer.method:
            return None
        try:
            payload = json.loads(tx.payload)
            if not isinstance(payload, dict) or any(payload.get(k) != v or type(payload.get(k)) is not type(v)
                                                    for k, v in offer.where):
                return None
            return check_tag(payload.get(offer.tag_field))
        except ValueError:
            self.bad += 1
            return None

    async def run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - an offer must not take the node down
            log.exception("offer %s stopped after an internal error", self.offer.id)

    async def _follow(self) -> None:
        height = self._load_cursor()
        log.info("offer %s: watching %s.%s on chain %s from height %d", self.offer.id, self.offer.contract,
                 self.offer.method, self.offer.chain, height)
        while True:
            await self._chain.wait_for_height(height + 1)
            while height < self._chain.durable_height:
                height += 1
                await self._block(height)
                self._save_cursor(height)

    async def _block(self, height: int) -> None:
        ledger = self._chain.ledger
        receipts = ledger.block_receipts(height)
        for receipt, request in zip(receipts, ledger.block(height).proposal.requests):
            if receipt.status != OK:
                continue
            tag = self.matches(codec.tx_from_request(request))
            if tag is None:
                continue
            app_key = bound_app_key(self._authn, tag)
            if app_key is None:
                self.unbound += 1
                log.info("offer %s: the subject of tx %s has no app key bound on the authn chain; not offered",
                         self.offer.id, receipt.tx_id.hex())
                continue
            notice = {"kind": "offer", "offer": self.offer.id, "notice": self.offer.notice,
                      "source": {"chain": self.offer.chain, "height": height, "tx_id": receipt.tx_id.hex()}}
            while True:
                try:
                    digest = await self._pusher.push_notice(tag=tag, recipient_key=app_key, notice=notice)
                    break
                except OutboxFull:
                    await asyncio.sleep(OUTBOX_FULL_RETRY_S)
            self.pushed += 1
            log.info("offer %s pushed for tx %s: notice %s", self.offer.id, receipt.tx_id.hex(), digest.hex())


def start(host) -> list[asyncio.Task]:
    """One task per [[offers]] table (config checked the chains and [mqtt])."""
    if host.pusher is None:
        return []
    cursor_dir = host.config.data_dir / "offers"
    return [asyncio.get_running_loop().create_task(
        OfferWatcher(offer, host.chains[offer.chain], host.chains[AUTHN_CHAIN], host.pusher, cursor_dir).run(),
        name=f"offer-{offer.id}") for offer in host.config.offers]


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

