"""A small HTTP/1.1 server on the node's event loop, shared by the metrics
([metrics] listen, docs/operations.md, "Metrics") and the explorer
([explorer] listen, docs/design.md, "Explorer and audit page"), each on a
port of its own.

It runs on the node's loop because what it reads (each chain's status,
ledger and state snapshot) belongs to that loop (docs/design.md, "Rule 5:
edges are thin"): a request reads between two steps of a chain, never
half-way through one. One request per connection, a bounded head, a
timeout and a cap on concurrent connections; GET and HEAD, and POST only on
the paths a server names (`post_paths`: the citizen audit page's signed
request), with a JSON body of at most POST_BODY_BYTES_MAX bytes. Every route
is synchronous and bounded in work by its own page sizes.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

log = logging.getLogger("govchain.http")

REQUEST_HEAD_BYTES_MAX = 8192
POST_BODY_BYTES_MAX = 4096
REQUEST_TIMEOUT_S = 5.0
CONNECTIONS_MAX = 16  # concurrent requests; more are closed at once

# Served with every answer: nothing from elsewhere, no framing, no sniffing,
# no referrer leaking a transaction id to another site.
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # percent-decoded, without the query
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""  # POST only
    peer: str = ""  # the client's address (a reverse proxy's, behind one)


@dataclass(frozen=True)
class HttpResponse:
    status: str  # "200 OK"
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())


def text(status: str, message: str) -> HttpResponse:
    return HttpResponse(status, message.encode() + b"\n")


def json_response(obj, status: str = "200 OK") -> HttpResponse:
    return HttpResponse(status, json.dumps(obj, sort_keys=True, ensure_ascii=False).encode(),
                        "application/json; charset=utf-8")


# A route answers the requests it knows (None: not mine).
Route = Callable[[HttpRequest], HttpResponse | None]


class HttpServer:
    def __init__(self, *routes: Route, not_found: str = "not found", post_paths: frozenset[str] = frozenset()) -> None:
        self._routes = routes
        self._post_paths = post_paths
        self._not_found = not_found
        self._server: asyncio.Server | None = None
        self._connections = 0

    async def listen(self, host: str, port: int) -> int:
        """Bind and serve; the port (useful with port 0). Raises OSError when it cannot bind."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=REQUEST_HEAD_BYTES_MAX,
                                                  reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            if self._connections <= CONNECTIONS_MAX:
                await asyncio.wait_for(self._answer(reader, writer), REQUEST_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, *_ = head[0].split(" ") + ["", ""]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        raw_path, _, raw_query = target.partition("?")
        path = unquote(raw_path)
        body = b""
        if method == "POST" and path in self._post_paths:
            body, response = await self._body(reader, headers)
        elif method not in ("GET", "HEAD"):
            response = text("405 Method Not Allowed", "read-only: GET and HEAD"
                            + (f"; POST only to {', '.join(sorted(self._post_paths))}" if self._post_paths else ""))
        else:
            response = None
        if response is None:
            try:
                query = dict(parse_qsl(raw_query, max_num_fields=16))
            except ValueError:
                response = text("400 Bad Request", "at most 16 query parameters")
            else:
                peer = writer.get_extra_info("peername")
                response = self._route(HttpRequest(method, path, query, headers, body,
                                                   str(peer[0]) if isinstance(peer, tuple) else ""))
        await self._write(writer, method, response)

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, HttpResponse | None]:
        """A POST's JSON body, read only when declared and small enough; else the answer refusing it."""
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return b"", text("415 Unsupported Media Type", "POST a JSON body (Content-Type: application/json)")
        length = headers.get("content-length", "")
        if not length.isdigit():
            return b"", text("411 Length Required", "POST needs a Content-Length")
        if int(length) > POST_BODY_BYTES_MAX:
            return b"", text("413 Content Too Large", f"a POST body is at most {POST_BODY_BYTES_MAX} bytes")
        return await reader.readexactly(int(length)), None

    def _route(self, request: HttpRequest) -> HttpResponse:
        try:
            for route in self._routes:
                if (response := route(request)) is not None:
                    return response
        except Exception:  # a bug in a route must not take the node down
            log.exception("answering %s %s failed", request.method, request.path)
            return text("500 Internal Server Error", "answering failed; see the node's log")
        return text("404 Not Found", self._not_found)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, method: str, r: HttpResponse) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (*SECURITY_HEADERS, *r.headers))
        writer.write(f"HTTP/1.1 {r.status}\r\nContent-Type: {r.content_type}\r\nContent-Length: {len(r.body)}\r\n"
                     f"{extra}Connection: close\r\n\r\n".encode("latin-1") + (r.body if method != "HEAD" else b""))
        await writer.drain()
