"""Keyset paging and cheap ``numberMatched`` for the PostGIS provider.

The ``cursor`` of the next links, and when ``numberMatched`` is exact or estimated:
``docs/internals.md`` ("Paging and numberMatched").
Cursors are signed (HMAC-SHA256) and verified before they are decoded, and bounded when
decoded (``docs/security.md``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql

from sdi.settings import get_settings

CURSOR_PARAM = "cursor"
EXACT_COUNT_BELOW = 10_000  # estimated rows under which numberMatched is counted exactly
_ESTIMATE_TTL = 60.0  # seconds a planner estimate is reused for the same query
_MAX_CURSOR = 1 << 20  # bytes a cursor may inflate to (a filter with a detailed polygon)
_MAX_TOKEN = 1 << 20  # characters of a token looked at (the query length limit is far lower)
_MAX_COUNT = 1 << 53  # offsets and counts beyond this are no page of ours
_MAX_KEYS = 16  # sort keys + id
_MAX_DEPTH = 64  # nesting of the filter a cursor carries (CQL2 JSON)
_MAC_BYTES = 16  # truncated HMAC-SHA256 (128 bits)
_secrets: dict[tuple[str | None, str], bytes] = {}
_secret_lock = threading.Lock()


def secret() -> bytes:
    """The key cursors are signed with: ``SDI_CURSOR_SECRET`` if set (several instances behind
    one address must share it), else ``<state>/server/cursor.key``, generated once (0600)
    and shared by every worker of the server. Cached per setting (tests change them)."""
    settings = get_settings()
    configured = settings.cursor_secret.get_secret_value() if settings.cursor_secret else None
    key = (configured, str(settings.state_dir))
    found = _secrets.get(key)
    if found is not None:
        return found
    with _secret_lock:
        if key not in _secrets:
            _secrets[key] = (
                configured.encode()
                if configured
                else _key_file(settings.state_dir / "server" / "cursor.key")
            )
        return _secrets[key]


def _key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: of two workers starting together, one writes and both read the same key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    for _ in range(50):  # the writer may not have written yet
        text = path.read_text().strip()
        if text:
            return text.encode()
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; remove it to have a new key generated")


def _mac(payload: bytes) -> bytes:
    return hmac.new(secret(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _depth(value: Any, limit: int = _MAX_DEPTH) -> int:
    """Nesting depth of a decoded JSON value, stopping beyond ``limit`` (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _count(value: Any, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_COUNT:
        raise ValueError("not a count")
    return value


@dataclass
class Cursor:
    signature: str
    offset: int
    keys: list[str | None] | None = None  # sort key values (as text) and id of the last row
    matched: int | None = None
    filter: Any = None  # CQL2 JSON

    def encode(self) -> str:
        body = {"v": 1, "s": self.signature, "o": self.offset}
        if self.keys is not None:
            body["k"] = self.keys
        if self.matched is not None:
            body["n"] = self.matched
        if self.filter is not None:
            body["f"] = self.filter
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        payload = zlib.compress(raw, 6)
        return _b64(_mac(payload) + payload)  # the signature first, then the payload

    @classmethod
    def decode(cls, token: str) -> Cursor | None:
        """The cursor, or None when the token is not one we signed or is out of bounds (then
        it is ignored). The signature is checked before the payload is inflated or parsed."""
        try:
            if not isinstance(token, str) or len(token) > _MAX_TOKEN:
                return None
            data = _unb64(token)
            mac, payload = data[:_MAC_BYTES], data[_MAC_BYTES:]
            if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(payload)):
                return None
            inflate = zlib.decompressobj()
            raw = inflate.decompress(payload, _MAX_CURSOR)
            if inflate.unconsumed_tail or not inflate.eof:  # too large, or truncated
                return None
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("v") != 1 or _depth(body) > _MAX_DEPTH:
                return None
            keys = body.get("k")
            if keys is not None and not (
                isinstance(keys, list)
                and len(keys) <= _MAX_KEYS
                and all(k is None or isinstance(k, str) for k in keys)
            ):
                return None
            signature_ = body["s"]
            if not isinstance(signature_, str) or len(signature_) > 64:
                return None
            offset = _count(body["o"])
            assert offset is not None  # not optional: _count raised otherwise
            return cls(
                signature=signature_,
                offset=offset,
                keys=keys,
                matched=_count(body.get("n"), optional=True),
                filter=body.get("f"),
            )
        except (ValueError, KeyError, TypeError, RecursionError, zlib.error, UnicodeError):
            return None


def signature(*parts: Any) -> str:
    """A short digest of everything that defines a query's rows and their order."""
    text = json.dumps(parts, default=str, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class SortKey:
    column: str
    pg_type: str
    descending: bool = False


def seek_condition(
    order: list[SortKey], keys: list[str | None], alias: str = "t"
) -> tuple[sql.Composable, dict[str, Any]]:
    """Rows strictly after ``keys`` in ``ORDER BY order`` (ASC NULLS LAST, DESC NULLS FIRST).

    The last key is the id (never null): with the default order (by id only) this is
    ``t.id > %(k0)s``, an index seek.
    """
    if len(order) != len(keys):
        raise ValueError("cursor keys do not match the order")
    params: dict[str, Any] = {}
    equal: list[sql.Composable] = []
    alternatives: list[sql.Composable] = []
    for i, (key, value) in enumerate(zip(order, keys, strict=True)):
        column = sql.Identifier(alias, key.column)
        name = f"k{i}"
        cast = sql.SQL(key.pg_type)
        value_sql = sql.SQL("{}::{}").format(sql.Placeholder(name), cast)
        if value is not None:
            params[name] = value
        if key.descending:  # NULLS FIRST
            if value is None:
                after = sql.SQL("{} IS NOT NULL").format(column)
                same = sql.SQL("{} IS NULL").format(column)
            else:
                after = sql.SQL("{} < {}").format(column, value_sql)
                same = sql.SQL("{} = {}").format(column, value_sql)
        else:  # NULLS LAST
            if value is None:
                after = None
                same = sql.SQL("{} IS NULL").format(column)
            else:
                after = sql.SQL("({} > {} OR {} IS NULL)").format(column, value_sql, column)
                same = sql.SQL("{} = {}").format(column, value_sql)
            if i == len(order) - 1 and value is not None:
                after = sql.SQL("{} > {}").format(column, value_sql)  # the id: never null
        if after is not None:
            alternatives.append(sql.SQL(" AND ").join([*equal, after]))
        equal.append(same)
    if not alternatives:
        return sql.SQL("FALSE"), params
    if len(alternatives) == 1:
        return alternatives[0], params
    return sql.SQL("({})").format(
        sql.SQL(" OR ").join(sql.SQL("({})").format(a) for a in alternatives)
    ), params


def order_by(order: list[SortKey], alias: str = "t") -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(alias, k.column),
            sql.SQL("DESC NULLS FIRST" if k.descending else "ASC NULLS LAST"),
        )
        for k in order
    )


# -- counting ---------------------------------------------------------------------------
@dataclass
class _Estimates:
    ttl: float = _ESTIMATE_TTL
    entries: dict[Any, tuple[float, int]] = field(default_factory=dict)

    def get(self, key: Any) -> int | None:
        hit = self.entries.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, key: Any, rows: int) -> None:
        if len(self.entries) > 512:
            self.entries.clear()
        self.entries[key] = (time.monotonic(), rows)


ESTIMATES = _Estimates()


def estimate_rows(conn: Any, statement: sql.Composable, params: dict[str, Any]) -> int:
    """The planner's row estimate of ``statement`` (cached briefly per query)."""
    key = (statement.as_string(conn), tuple(sorted((k, repr(v)) for k, v in params.items())))
    cached = ESTIMATES.get(key)
    if cached is not None:
        return cached
    plan = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(statement), params).fetchone()
    document = plan[0]
    if isinstance(document, str):
        document = json.loads(document)
    rows = int(document[0]["Plan"]["Plan Rows"])
    ESTIMATES.put(key, rows)
    return rows
