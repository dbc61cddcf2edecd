"""API keys: issued, listed and revoked with ``sdi keys``, checked by the API on each request.

A key is ``sdi_<public id>_<32 random bytes>``; the database keeps the id and the SHA-256 of
the key, never the key. Keys and write rights: README, "Access control and API keys".

>>> key_id, key = new_key()
>>> parse_key(key) == key_id
True
>>> parse_key("sdi_short_x") is None
True
>>> normalise_department(" Construction ")
'construction'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import psycopg
from psycopg import sql

from sdi.errors import SdiError
from sdi.sql import one

PREFIX = "sdi"
ADMIN = "*"  # the department of an administrator's key: every layer, and writes
# Seconds an API worker trusts what it read about a key: a revocation takes effect within it.
CACHE_TTL = 5.0
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 10
_KEY_RE = re.compile(rf"^{PREFIX}_([a-z0-9]{{8,32}})_([A-Za-z0-9_-]{{32,128}})$")
_DEPARTMENT_RE = re.compile(r"^[a-z0-9_.-]+$")
_COLLECTION_RE = re.compile(r"^[a-z0-9_]+$")  # a layer file's stem (the collection id)


class ApiKeyError(SdiError):
    """A key cannot be created or revoked as asked."""

    exit_code = 2


@dataclass(frozen=True)
class ApiKey:
    """One row of ``auth.api_keys`` (without the hash)."""

    key_id: str
    name: str
    department: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    writes: tuple[str, ...] = ()  # collections it may write to

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyRecord(NamedTuple):
    """What the API needs to know about a presented key id (:func:`find_key`)."""

    department: str
    key_sha256: bytes
    revoked: bool
    name: str = ""
    writes: frozenset[str] = frozenset()


def normalise_department(department: str) -> str:
    return department.strip().lower()


def new_key() -> tuple[str, str]:
    """A fresh (key id, key); nothing is stored."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, or None (then it is certainly not valid)."""
    match = _KEY_RE.match(key.strip())
    return match.group(1) if match else None


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.strip().encode("utf-8")).digest()


def hash_matches(key: str, stored: bytes) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(key_hash(key), bytes(stored))


def _check_table(conn: psycopg.Connection) -> None:
    if one(conn.execute("SELECT to_regclass('auth.api_keys')"))[0] is None:
        raise ApiKeyError(
            "the warehouse has no table auth.api_keys yet: run `sdi db upgrade` first"
        )


def normalise_writes(collections: Iterable[str]) -> tuple[str, ...]:
    """Collection ids a key may write to, checked and sorted.

    >>> normalise_writes([" incidents", "incidents"])
    ('incidents',)
    """
    writes = sorted({c.strip() for c in collections})
    bad = [c for c in writes if not _COLLECTION_RE.match(c)]
    if bad:
        raise ApiKeyError(
            f"--write {bad[0]!r}: give a collection id, the name of its file in layers/ "
            "without .yml (lower-case letters, digits and '_', e.g. incidents)"
        )
    return tuple(writes)


_COLUMNS = sql.SQL(", ").join(
    map(
        sql.Identifier,
        (
            "key_id",
            "name",
            "department",
            "created_at",
            "created_by",
            "revoked_at",
            "write_collections",
        ),
    )
)


def create_key(
    conn: psycopg.Connection, department: str, name: str, writes: Iterable[str] = ()
) -> tuple[ApiKey, str]:
    """Store a new key of ``department`` (``*`` for an administrator) that may write to the
    collections ``writes``; returns it and the key."""
    department = normalise_department(department)
    write_collections = normalise_writes(writes)
    if department != ADMIN and not _DEPARTMENT_RE.match(department):
        raise ApiKeyError(
            f"department {department!r}: use the short name layers use in `departments` "
            "(letters, digits, '.', '_' or '-', e.g. construction), or '*' for an administrator"
        )
    if not name.strip():
        raise ApiKeyError(
            "--name is required: say who uses the key (e.g. 'QGIS of the planning office')"
        )
    _check_table(conn)
    key_id, key = new_key()
    cursor = conn.execute(
        sql.SQL(
            "INSERT INTO auth.api_keys (key_id, name, department, key_sha256, write_collections) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING {}"
        ).format(_COLUMNS),
        (key_id, name.strip(), department, key_hash(key), list(write_collections)),
    )
    row = one(cursor)
    conn.commit()
    return _api_key(row), key


def _api_key(row: tuple) -> ApiKey:
    key_id, name, department, created_at, created_by, revoked_at, writes = row
    return ApiKey(key_id, name, department, created_at, created_by, revoked_at, tuple(writes or ()))


def list_keys(conn: psycopg.Connection, include_revoked: bool = True) -> list[ApiKey]:
    _check_table(conn)
    rows = conn.execute(
        sql.SQL("SELECT {} FROM auth.api_keys {} ORDER BY created_at, key_id").format(
            _COLUMNS, sql.SQL("" if include_revoked else "WHERE revoked_at IS NULL")
        )
    ).fetchall()
    return [_api_key(row) for row in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> ApiKey:
    """Revoke a key by its id (or by the whole key, if that is what was pasted)."""
    _check_table(conn)
    key_id = parse_key(key_id) or key_id.strip()
    row = conn.execute(
        sql.SQL(
            "UPDATE auth.api_keys SET revoked_at = now() WHERE key_id = %s "
            "AND revoked_at IS NULL RETURNING {}"
        ).format(_COLUMNS),
        (key_id,),
    ).fetchone()
    conn.commit()
    if row is None:
        known = conn.execute(
            "SELECT revoked_at FROM auth.api_keys WHERE key_id = %s", (key_id,)
        ).fetchone()
        if known:
            raise ApiKeyError(f"key {key_id} was already revoked on {known[0]:%Y-%m-%d %H:%M}")
        raise ApiKeyError(f"no key {key_id!r}; `sdi keys list` shows the ids")
    return _api_key(row)


def find_key(conn: psycopg.Connection, key_id: str) -> KeyRecord | None:
    """Department, stored hash, revocation, name and write rights of a key id, or None."""
    row = conn.execute(
        "SELECT department, key_sha256, revoked_at IS NOT NULL, name, write_collections "
        "FROM auth.api_keys WHERE key_id = %s",
        (key_id,),
    ).fetchone()
    if row is None:
        return None
    return KeyRecord(row[0], bytes(row[1]), row[2], row[3], frozenset(row[4] or ()))
