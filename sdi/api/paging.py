"""Keyset paging and cheap ``numberMatched`` for the PostGIS provider.

The ``cursor`` of the next links, and when ``numberMatched`` is exact or estimated:
``docs/internals.md`` ("Paging and numberMatched").
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

CURSOR_PARAM = "cursor"
EXACT_COUNT_BELOW = 10_000  # estimated rows under which numberMatched is counted exactly
_ESTIMATE_TTL = 60.0  # seconds a planner estimate is reused for the same query
_MAX_CURSOR = 1 << 20  # bytes a cursor may inflate to (a filter with a detailed polygon)


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
        return base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor | None:
        """The cursor, or None when the token is not one of ours (then it is ignored)."""
        try:
            padded = token + "=" * (-len(token) % 4)
            inflate = zlib.decompressobj()
            raw = inflate.decompress(base64.urlsafe_b64decode(padded.encode()), _MAX_CURSOR)
            if inflate.unconsumed_tail or not inflate.eof:  # too large, or truncated
                return None
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("v") != 1:
                return None
            keys = body.get("k")
            if keys is not None and not (
                isinstance(keys, list) and all(k is None or isinstance(k, str) for k in keys)
            ):
                return None
            matched = body.get("n")
            return cls(
                signature=str(body["s"]),
                offset=int(body["o"]),
                keys=keys,
                matched=int(matched) if matched is not None else None,
                filter=body.get("f"),
            )
        except (ValueError, KeyError, TypeError, zlib.error):
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
