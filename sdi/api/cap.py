"""CAP 1.2 messages and an Atom feed of current alerts, at stable URLs (public).

- ``GET /cap/alerts.atom``: an Atom 1.0 feed (RFC 4287) of the current alerts — for each
  active disaster risk level, its latest CAP message (an ``Alert`` or ``Update``), newest
  first — as alert hubs and broadcasters poll it (OASIS CAP feeds practice: one ``entry`` per
  message with a link of type ``application/cap+xml``).
- ``GET /cap/{identifier}.xml``: one message as issued (``hazard.cap_messages``), never
  rewritten: its identifier and URL stay valid after the warning is updated or cancelled
  (``Update`` and ``Cancel`` messages reference it).

The messages are written by ``sdi.hazard.cap`` when the risk levels are recomputed. A
pure ASGI dispatcher like the dashboard: ``/cap`` paths are answered here, the rest goes on.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.api.asgi import send_body, send_error
from sdi.api.db import connection
from sdi.sql import one

PREFIX = "/cap"
CAP_TYPE = "application/cap+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
_MESSAGE = re.compile(r"^/cap/([A-Za-z0-9._-]{1,200})\.xml$")

_CURRENT = """
SELECT DISTINCT ON (m.risk_id) m.identifier, m.msg_type, m.sent, m.level, r.hazard,
       r.area_name, r.area_code, r.reason, r.colour
FROM hazard.cap_messages m
JOIN hazard.risk_levels_current r ON r.id = m.risk_id
ORDER BY m.risk_id, m.id DESC
"""


def _fetch_current(conn: psycopg.Connection) -> list[tuple]:
    rows = conn.execute(_CURRENT).fetchall()
    return sorted(rows, key=lambda r: r[2], reverse=True)


def _atom(base: str, rows: list[tuple]) -> bytes:
    updated = max((r[2] for r in rows), default=datetime(2021, 7, 1, tzinfo=UTC))
    feed = f"{base}{PREFIX}/alerts.atom"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<id>{escape(feed)}</id>",
        "<title>Quảng Ninh disaster risk alerts (CAP 1.2)</title>",
        f"<updated>{updated.isoformat()}</updated>",
        "<author><name>Quảng Ninh Provincial Steering Committee for Natural Disaster "
        "Prevention</name></author>",
        f'<link rel="self" type="application/atom+xml" href={quoteattr(feed)}/>',
    ]
    for identifier, msg_type, sent, level, hazard, area_name, area_code, reason, _ in rows:
        url = f"{base}{PREFIX}/{identifier}.xml"
        title = f"{hazard.replace('_', ' ')} level {level}: {area_name or area_code}"
        parts += [
            "<entry>",
            f"<id>urn:cap:{escape(identifier)}</id>",
            f"<title>{escape(title)}</title>",
            f"<updated>{sent.isoformat()}</updated>",
            f'<link rel="alternate" type="application/cap+xml" href={quoteattr(url)}/>',
            f"<category term={quoteattr(msg_type)}/>",
            f"<summary>{escape(reason)}</summary>",
            "</entry>",
        ]
    parts.append("</feed>")
    return "\n".join(parts).encode()


def _base(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"localhost").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}"


async def _feed(scope: Scope, send: Send) -> None:
    def read() -> list[tuple]:
        with connection() as conn:
            installed = "SELECT to_regclass('hazard.cap_messages') IS NOT NULL"
            if not one(conn.execute(installed))[0]:
                return []
            return _fetch_current(conn)

    rows = await run_in_threadpool(read)
    await send_body(send, 200, _atom(_base(scope), rows), ATOM_TYPE)


async def _message(identifier: str, send: Send) -> None:
    def read() -> str | None:
        with connection() as conn:
            row = conn.execute(
                "SELECT xml FROM hazard.cap_messages WHERE identifier = %s", (identifier,)
            ).fetchone()
            return row[0] if row else None

    xml = await run_in_threadpool(read)
    if xml is None:
        await send_error(send, 404, "NotFound", f"no CAP message {identifier!r}")
        return
    await send_body(send, 200, xml.encode(), CAP_TYPE)


class CapFeed:
    """ASGI dispatcher: ``/cap/…`` answered here, everything else goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, 405, "MethodNotAllowed", "only GET", [(b"allow", b"GET, HEAD")])
            return
        if path == f"{PREFIX}/alerts.atom":
            await _feed(scope, send)
            return
        match = _MESSAGE.match(path)
        if match:
            await _message(match.group(1), send)
            return
        await send_error(
            send, 404, "NotFound", "CAP paths: /cap/alerts.atom and /cap/{identifier}.xml"
        )


# For the access log's route templates (sdi.api.ops).
ROUTES = [
    Route(f"{PREFIX}/alerts.atom", endpoint=lambda r: None),
    Route(PREFIX + "/{identifier}.xml", endpoint=lambda r: None),
]
