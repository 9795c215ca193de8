"""`govchain notices`: the citizen's side of proactive push (docs/design.md,
"Push notices and offers").

Connects to the MQTT broker with a persistent session (clean_session false;
the client id is derived from the app key), subscribes QoS 1 to the topic of
the subject tag, and prints each notice as it arrives: unsealed with the app
key, its envelope checked (sealed for this tag's topic, signature valid),
and its digest, SHA-256 of the sealed bytes, the value the item chain
records for the notice. Notices sent while this command was not running
arrive when it next connects with the same key. A payload that does not open
or check is reported on stderr and skipped.
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import aiomqtt
from nacl.signing import SigningKey

from node.core.config import parse_address
from node.core.keys import load_signing_key
from node.services.push import NoticeError, OpenedNotice, check_tag, client_id_for, notice_topic, open_notice


async def notices(app_key: SigningKey, tag: str, host: str, port: int, *, prefix: str = "govchain",
                  timeout_s: float = 10.0) -> AsyncIterator[OpenedNotice | NoticeError]:
    """Every payload on the tag's topic, opened; persistent session, QoS 1."""
    client_id = client_id_for(bytes(app_key.verify_key))
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=False, timeout=timeout_s) as client:
        await client.subscribe(notice_topic(prefix, tag), qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                yield open_notice(app_key, tag, payload)
            except NoticeError as exc:
                yield exc


async def _print_notices(args, key: SigningKey, host: str, port: int) -> int:
    seen: set[str] = set()  # delivery is at least once: show each digest once

    async def loop() -> None:
        async for item in notices(key, args.tag, host, port, prefix=args.prefix):
            if isinstance(item, NoticeError):
                print(f"skipped a payload on the topic: {item}", file=sys.stderr)
                continue
            if item.digest in seen:
                continue
            seen.add(item.digest)
            if args.json:
                print(json.dumps(item.to_json(), sort_keys=True, ensure_ascii=False), flush=True)
            else:
                print(f"notice {item.digest} from {item.department} (key {item.signer[:16]}):\n"
                      f"  {json.dumps(item.notice, ensure_ascii=False, sort_keys=True)}", flush=True)
            if args.count and len(seen) >= args.count:
                return

    try:
        await asyncio.wait_for(loop(), args.wait)
    except asyncio.TimeoutError:
        if args.count:
            print(f"error: {len(seen)} of {args.count} notices arrived within {args.wait}s", file=sys.stderr)
            return 1
    except aiomqtt.MqttError as exc:
        print(f"error: MQTT broker {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_notices(args) -> int:
    key = load_signing_key(args.key)
    check_tag(args.tag)
    address = parse_address(args.broker, allow_port_zero=False)
    return asyncio.run(_print_notices(args, key, address.host, address.port))


def register(sub) -> None:
    n = sub.add_parser("notices", help="receive the notices pushed to a citizen (persistent MQTT session)",
                       description=__doc__.split("\n\n")[1])
    n.add_argument("--key", required=True, help="the citizen's app key file (the key the authn event bound)")
    n.add_argument("--broker", required=True, metavar="HOST:PORT", help="the MQTT broker")
    n.add_argument("--tag", required=True, help="the citizen's subject tag (hex; `govchain tag`)")
    n.add_argument("--prefix", default="govchain", help="the nodes' [mqtt] topic_prefix (default govchain)")
    n.add_argument("--count", type=int, default=0, help="exit after this many notices (default: run until ^C)")
    n.add_argument("--wait", type=float, default=None,
                   help="exit after this many seconds (an error with --count if fewer arrived)")
    n.add_argument("--json", action="store_true", help="one JSON object per notice, per line")
    n.set_defaults(func=cmd_notices)
