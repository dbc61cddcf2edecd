"""Citizen incident reports: OGC API Features Part 4 writes, validated and logged (issue 6).

:class:`IncidentProvider` says what may be written (and logs it); :class:`IncidentWrites`
carries the writer to it, turns PATCH into a partial PUT and refuses DELETE. The API, the
rules and how the writer reaches the provider: ``docs/incidents.md``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pygeoapi.provider.base import ProviderGenericError, ProviderItemNotFoundError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdi.api.asgi import header, replace_header, send_error
from sdi.api.auth import SCOPE_IDENTITY, Identity
from sdi.api.db import connection, provider_error
from sdi.api.provider import PostGISProvider
from sdi.sql import one

LOGGER = logging.getLogger(__name__)

PROVIDER = "sdi.api.incidents.IncidentProvider"
CATEGORIES = "incident_categories"  # etl/codes/incident_categories.yml
MAX_BODY = 64 * 1024  # bytes: a report is a point and a few short texts
DESCRIPTION_MAX = 2000  # characters (the table allows 4000: room to raise it without migrating)
STATUSES = ("new", "assigned", "resolved")
# The workflow: a report is assigned to an office, which resolves it. Nothing goes back.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"assigned"}),
    "assigned": frozenset({"resolved"}),
    "resolved": frozenset(),
}
# Optional text fields: maximum length and, for contact details, the accepted shape.
OPTIONAL_TEXT: dict[str, tuple[int, re.Pattern[str] | None, str]] = {
    "assigned_to": (200, None, "the office the report is routed to"),
    "reporter_name": (200, None, "the reporter's name"),
    "reporter_phone": (
        32,
        re.compile(r"^\+?[0-9][0-9 ().-]{5,31}$"),
        "digits, e.g. +84 912 345 678",
    ),
    "reporter_email": (254, re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), "an e-mail address"),
}
PERSONAL = frozenset({"reporter_name", "reporter_phone", "reporter_email"})
# Written by the server; accepted (and ignored) in a PUT of a feature read back from the API.
READ_ONLY = frozenset({"id", "commune_code", "reported_at", "updated_at", "resolved_at"})
WRITABLE = frozenset({"category", "description", "status", *OPTIONAL_TEXT})
REQUIRED = ("category", "description")  # on create, and with status on a PUT
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not tab, newline, carriage return
ENVELOPE = "sdi:write"


# -- errors pygeoapi turns into OGC exception bodies with their status ------------------------
class _OgcError(ProviderGenericError):
    """pygeoapi reads the body's code and the HTTP status from these two class attributes."""

    def __init_subclass__(cls, *, code: str, status: int, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.ogc_exception_code = code
        cls.http_status_code = status


class IncidentInvalid(_OgcError, code="InvalidParameterValue", status=400):
    """The report is malformed or breaks a rule: 400, naming the field and the rule."""


class IncidentConflict(_OgcError, code="Conflict", status=409):
    """The status change does not follow the workflow: 409."""


class IncidentNotDeletable(_OgcError, code="MethodNotAllowed", status=405):
    """Reports are kept: resolved, never deleted."""


class WriterUnknown(_OgcError, code="Unauthorized", status=401):
    """A body that did not come through :class:`IncidentWrites` (no live token)."""


class CommunesMissing(_OgcError, code="ServiceUnavailable", status=503):
    """The communes layer is not loaded, so a report cannot be placed in one."""


# -- who writes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Writer:
    """The API key behind a write, as the log records it."""

    key_id: str
    name: str
    department: str


_PENDING: dict[str, tuple[Writer, bool]] = {}  # token → (writer, partial) of requests in flight


def _hand_over(writer: Writer, partial: bool) -> str:
    token = secrets.token_urlsafe(32)
    _PENDING[token] = (writer, partial)
    return token


def envelope(token: str, body: str) -> bytes:
    """The body pygeoapi passes to the provider: the client's text and the token."""
    return json.dumps({ENVELOPE: token, "body": body}, ensure_ascii=False).encode()


def _unwrap(item: Any) -> tuple[Writer, bool, str]:
    try:
        data = json.loads(item)
        token, body = data[ENVELOPE], data["body"]
        writer, partial = _PENDING.pop(token)
    except (TypeError, ValueError, KeyError):
        raise WriterUnknown(
            user_msg="writes are accepted only from an authorised API key"
        ) from None
    return writer, partial, body


# -- the rules ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def categories() -> dict[str, str]:
    """Category → its current code (``superseded`` codes map to current ones), lower-case."""
    from sdi.etl.codes import code_list

    codes = code_list(CATEGORIES)
    known = {c.lower(): c for c in codes.current}
    known.update({old.lower(): new for old, new in codes.superseded.items()})
    return known


# GeoJSON Feature members (RFC 7946 § 3.2; "bbox" § 5) a write may carry
FEATURE_MEMBERS = frozenset({"type", "id", "geometry", "properties", "bbox", "links"})


def _feature(body: str, partial: bool) -> dict[str, Any]:
    if not body.strip():
        raise IncidentInvalid(user_msg="the request body is empty: send a GeoJSON Feature")
    try:
        feature = json.loads(body)
    except ValueError as exc:
        raise IncidentInvalid(
            user_msg=f"the request body is not valid JSON: {exc}; send a GeoJSON Feature"
        ) from None
    except RecursionError:  # thousands of nested brackets
        raise IncidentInvalid(user_msg="the request body is nested too deeply") from None
    default_type = "Feature" if partial else None  # a merge patch carries only what changes
    if not isinstance(feature, dict) or feature.get("type", default_type) != "Feature":
        got = _shown(feature.get("type")) if isinstance(feature, dict) else type(feature).__name__
        raise IncidentInvalid(
            user_msg=f"send one GeoJSON Feature "
            '({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]}, '
            f'"properties": {{"category": …, "description": …}}}}), not {got}'
        )
    # a field sent beside "properties" (e.g. a PATCH of {"status": "assigned"}) would be
    # silently ignored: say where it belongs instead
    stray = sorted(set(feature) - FEATURE_MEMBERS)
    if stray:
        misplaced = [name for name in stray if name in WRITABLE]
        hint = f'; put {", ".join(misplaced)} under "properties"' if misplaced else ""
        raise IncidentInvalid(
            user_msg=f"unknown member(s) {_shown(', '.join(stray))} of the Feature; "
            f"accepted: {', '.join(sorted(FEATURE_MEMBERS))}{hint}"
        )
    properties = feature.get("properties", {} if partial else None)
    if not isinstance(properties, dict):
        raise IncidentInvalid(user_msg="properties: must be an object (JSON {…})")
    unknown = sorted(set(properties) - WRITABLE - READ_ONLY)
    if unknown:
        raise IncidentInvalid(
            user_msg=f"properties: unknown field(s) {_shown(', '.join(unknown))}; "
            f"accepted: {', '.join(sorted(WRITABLE))}"
        )
    return feature


def _shown(value: Any, limit: int = 80) -> str:
    """A client's value quoted in an error message, cut short (bodies may be 64 KiB).

    >>> _shown("abcdef", limit=4)
    "'abc…"
    """
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _point(geometry: Any) -> tuple[float, float]:
    """Longitude and latitude of a GeoJSON Point (CRS84), checked."""
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        got = _shown(geometry.get("type") if isinstance(geometry, dict) else geometry)
        raise IncidentInvalid(
            user_msg=f"geometry: must be a GeoJSON Point (where the incident is), not {got}"
        )
    coordinates = geometry.get("coordinates")
    if (
        not isinstance(coordinates, list)
        or len(coordinates) not in (2, 3)
        or not all(
            isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
            for c in coordinates
        )
    ):
        raise IncidentInvalid(
            user_msg="geometry.coordinates: must be [longitude, latitude] in degrees (WGS 84)"
        )
    return float(coordinates[0]), float(coordinates[1])


def _inside_province(lon: float, lat: float, extent: Iterable[float]) -> None:
    west, south, east, north = extent
    if west <= lon <= east and south <= lat <= north:
        return
    hint = "check the coordinates are WGS 84 degrees"
    if west <= lat <= east and south <= lon <= north:
        hint = "they look swapped: GeoJSON puts the longitude first, [longitude, latitude]"
    raise IncidentInvalid(
        user_msg=f"geometry: the point ({lon:g}, {lat:g}) is outside the province "
        f"(longitude {west:g} to {east:g}, latitude {south:g} to {north:g}); {hint}"
    )


def _text(name: str, value: Any, maximum: int, pattern: re.Pattern[str] | None, what: str) -> str:
    if not isinstance(value, str):
        raise IncidentInvalid(user_msg=f"{name}: must be text ({what})")
    value = value.strip()
    if not value:
        raise IncidentInvalid(user_msg=f"{name}: must not be empty ({what})")
    if len(value) > maximum:
        raise IncidentInvalid(
            user_msg=f"{name}: {len(value)} characters, at most {maximum} are accepted"
        )
    if _CONTROL.search(value):
        raise IncidentInvalid(user_msg=f"{name}: contains control characters")
    if pattern is not None and not pattern.match(value):
        raise IncidentInvalid(user_msg=f"{name}: {_shown(value)} is not {what}")
    return value


def _category(value: Any) -> str:
    known = categories()
    code = known.get(value.strip().lower()) if isinstance(value, str) else None
    if code is None:
        raise IncidentInvalid(
            user_msg=f"category: {_shown(value)} is not in the list "
            f"({', '.join(sorted(set(known.values())))}; etl/codes/{CATEGORIES}.yml)"
        )
    return code


def checked_values(properties: dict[str, Any], required: Iterable[str]) -> dict[str, Any]:
    """The writable values of ``properties``, validated; ``None`` clears an optional field.

    >>> checked_values({"description": "  Cây đổ chắn đường ", "reporter_phone": None}, ())
    {'description': 'Cây đổ chắn đường', 'reporter_phone': None}
    """
    missing = [name for name in required if properties.get(name) is None]
    if missing:
        raise IncidentInvalid(user_msg=f"properties: {', '.join(missing)} required")
    values: dict[str, Any] = {}
    for name, value in properties.items():
        if name in READ_ONLY:
            continue  # derived by the server (a feature read back and sent again carries them)
        if name == "category":
            values[name] = _category(value)
        elif name == "description":
            values[name] = _text(name, value, DESCRIPTION_MAX, None, "what happened, where")
        elif name == "status":
            if value not in STATUSES:
                raise IncidentInvalid(
                    user_msg=f"status: {_shown(value)} is not one of {', '.join(STATUSES)}"
                )
            values[name] = value
        elif value is None:
            values[name] = None
        else:
            values[name] = _text(name, value, *OPTIONAL_TEXT[name])
    return values


def check_transition(old: str, new: str) -> None:
    """Refuse a status change the workflow does not have.

    >>> check_transition("new", "assigned")
    >>> try:  # doctest: +ELLIPSIS
    ...     check_transition("resolved", "new")
    ... except IncidentConflict as exc:
    ...     print(exc.message)
    status: resolved → new is not allowed; a resolved report stays resolved (report a new ...
    """
    if old == new or new in TRANSITIONS[old]:
        return
    allowed = TRANSITIONS[old]
    then = (
        f"from {old} it can only become {' or '.join(sorted(allowed))}"
        if allowed
        else "a resolved report stays resolved (report a new incident instead)"
    )
    raise IncidentConflict(user_msg=f"status: {old} → {new} is not allowed; {then}")


def _logged(values: dict[str, Any]) -> dict[str, Any]:
    """Values as the log keeps them: personal ones only as the fact that they are set."""
    return {k: ("(personal)" if k in PERSONAL and v is not None else v) for k, v in values.items()}


# -- the provider ---------------------------------------------------------------------------------
_COLUMNS = ("category", "status", "description", *OPTIONAL_TEXT)
_READABLE = tuple(c for c in _COLUMNS if c not in PERSONAL)


class IncidentProvider(PostGISProvider):
    """``ops.incidents`` for reads (the published properties only) and validated writes."""

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        self.editable = bool(provider_def.get("editable", False))

    def create(self, item: Any) -> int:
        writer, _, body = _unwrap(item)
        feature = _feature(body, partial=False)
        lon, lat = self._located(feature.get("geometry"))
        values = checked_values(feature["properties"], REQUIRED)
        if values.get("status", "new") != "new":
            raise IncidentConflict(
                user_msg=f"status: a report starts as new, not {values['status']}; "
                "change it afterwards (PATCH)"
            )
        values.pop("status", None)
        try:
            with connection() as conn, conn.transaction():
                commune = _commune(conn, lon, lat)
                columns = list(values)
                cursor = conn.execute(
                    f"INSERT INTO ops.incidents ({', '.join([*columns, 'commune_code'])}, "
                    "created_by, geom) VALUES ("
                    + ", ".join(["%s"] * (len(columns) + 2))
                    + ", ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id, status",
                    [*values.values(), commune, _who(writer), lon, lat],
                )
                row = one(cursor)
                new = {**values, "commune_code": commune, "geometry": [lon, lat]}
                _log(conn, row[0], "create", None, row[1], {}, new, writer)
        except psycopg.Error as exc:
            raise provider_error(exc) from exc
        LOGGER.info("incident %s created by %s", row[0], _who(writer))
        _refresh_operations()
        return row[0]

    def update(self, identifier: Any, item: Any) -> bool:
        writer, partial, body = _unwrap(item)
        key = _item_id(identifier)
        feature = _feature(body, partial)
        properties = feature.get("properties") or {}
        located = None
        if "geometry" in feature or not partial:
            located = self._located(feature.get("geometry"))
        values = checked_values(properties, () if partial else (*REQUIRED, "status"))
        try:
            with connection() as conn, conn.transaction():
                # The API's role cannot read the reporter's contact (sdi.db.roles): those
                # values, when sent, are written (and logged as "(personal)") unread.
                row = conn.execute(
                    f"SELECT {', '.join(_READABLE)}, commune_code, ARRAY[ST_X(geom), ST_Y(geom)] "
                    "FROM ops.incidents WHERE id = %s FOR UPDATE",
                    (key,),
                ).fetchone()
                if row is None:
                    raise ProviderItemNotFoundError(user_msg=f"no incident {identifier!r}")
                current = dict(zip((*_READABLE, "commune_code", "geometry"), row, strict=True))
                old_status = current["status"]
                check_transition(old_status, values.get("status", old_status))
                changed = {k: v for k, v in values.items() if k in PERSONAL or current.get(k) != v}
                if located is not None and current["geometry"] != list(located):
                    changed["geometry"] = list(located)
                    commune = _commune(conn, *located)
                    if commune != current["commune_code"]:
                        changed["commune_code"] = commune
                if not changed:
                    return True  # nothing changes: nothing to log
                if old_status == "resolved":
                    # A resolved report is the record of what was done: frozen.
                    raise IncidentConflict(
                        user_msg="the incident is resolved and can no longer change ("
                        + ", ".join(sorted(changed))
                        + "); report a new incident instead"
                    )
                before = {k: current.get(k) for k in changed}
                _store(conn, key, changed)
                new_status = changed.get("status", old_status)
                _log(conn, key, "update", old_status, new_status, before, changed, writer)
        except psycopg.Error as exc:
            raise provider_error(exc) from exc
        LOGGER.info("incident %s changed by %s: %s", key, _who(writer), ", ".join(changed))
        _refresh_operations()
        return True

    def delete(self, identifier: Any) -> bool:
        raise IncidentNotDeletable(
            user_msg="incident reports are never deleted (their history is kept): set the "
            'status to resolved instead (PATCH {"properties": {"status": "resolved"}})'
        )

    def _located(self, geometry: Any) -> tuple[float, float]:
        from sdi.settings import get_settings

        if geometry is None:
            raise IncidentInvalid(user_msg="geometry: required, a GeoJSON Point")
        lon, lat = _point(geometry)
        _inside_province(lon, lat, get_settings().province_extent)
        return lon, lat


def _item_id(identifier: Any) -> int:
    try:
        key = int(identifier)
    except (TypeError, ValueError):
        raise ProviderItemNotFoundError(user_msg=f"no incident {identifier!r}") from None
    if not 0 < key < 2**63:
        raise ProviderItemNotFoundError(user_msg=f"no incident {identifier!r}")
    return key


def _who(writer: Writer) -> str:
    return f"{writer.key_id}: {writer.name} ({writer.department})"


def _commune(conn: psycopg.Connection, lon: float, lat: float) -> str:
    """The 2025 commune containing the point (the province's own boundary, not its box)."""
    cursor = conn.execute(
        "SELECT (SELECT commune_code FROM admin.communes_current WHERE admin_vintage = '2025' "
        "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) "
        "ORDER BY commune_code LIMIT 1), "
        "EXISTS (SELECT FROM admin.communes_current WHERE admin_vintage = '2025')",
        (lon, lat),
    )
    row = one(cursor)
    if row[0] is not None:
        return row[0]
    if not row[1]:
        raise CommunesMissing(
            user_msg="reports cannot be placed now: the communes are not loaded (ask the SDI "
            "service desk to run `sdi etl run admin_communes`)"
        )
    raise IncidentInvalid(
        user_msg=f"geometry: the point ({lon:g}, {lat:g}) is in no commune of the province "
        "(outside its boundary, or at sea); put it where the incident is"
    )


def _store(conn: psycopg.Connection, key: int, changed: dict[str, Any]) -> None:
    sets, params = ["updated_at = now()"], []
    for name, value in changed.items():
        if name == "geometry":
            sets.append("geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326)")
            params.extend(value)
        else:
            sets.append(f"{name} = %s")  # names come from WRITABLE and commune_code only
            params.append(value)
    if changed.get("status") == "resolved":
        sets.append("resolved_at = now()")
    conn.execute(f"UPDATE ops.incidents SET {', '.join(sets)} WHERE id = %s", [*params, key])


def _log(
    conn: psycopg.Connection,
    incident: int,
    action: str,
    old_status: str | None,
    new_status: str,
    old: dict[str, Any],
    new: dict[str, Any],
    writer: Writer,
) -> None:
    conn.execute(
        "INSERT INTO ops.incident_log (incident_id, action, old_status, new_status, old_values, "
        "new_values, key_id, key_name, department) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            incident,
            action,
            old_status,
            new_status,
            Jsonb(_logged(old)),
            Jsonb(_logged(new)),
            writer.key_id,
            writer.name,
            writer.department,
        ),
    )


def _refresh_operations() -> None:
    """Bring the operations summary's open-incident counts up to date, if it is installed.

    Runs after the write committed, in its own transaction: the report is stored whatever
    happens here (a failed refresh is logged; the next ETL load or change refreshes again).
    """
    try:
        from sdi.planning import refresh_operations
    except ImportError:
        return
    try:
        with connection() as conn:
            refresh_operations(conn)
    except Exception:  # the write stands; a client retry would only duplicate the report
        LOGGER.exception("operations summary not refreshed after an incident change")


# -- the ASGI side ------------------------------------------------------------------------------
_WRITE_PATH = re.compile(r"^/collections/([^/]+)/items(?:/([^/]+))?/?$")
_JSON_MEDIA = frozenset(
    {"application/geo+json", "application/json", "application/merge-patch+json"}
)
_CRS84 = (
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326",
)


ITEM_METHODS = "GET, HEAD, OPTIONS, PUT, PATCH"  # of an incident (no DELETE)


def _allow(send: Send, methods: str) -> Send:
    """``send`` with the response's ``Allow`` header replaced by ``methods``."""

    async def relabelled(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = replace_header(message.get("headers", []), b"allow", methods.encode())
            message = {**message, "headers": headers}
        await send(message)

    return relabelled


class IncidentWrites:
    """ASGI middleware: writes to the collections served by :class:`IncidentProvider` reach
    pygeoapi with the writer's token, as ``application/geo+json``; PATCH becomes a partial PUT;
    DELETE is refused; bodies are bounded. Everything else passes through untouched."""

    def __init__(self, app: ASGIApp, collections: Iterable[str]) -> None:
        self.app = app
        self.collections = frozenset(collections)

    @classmethod
    def from_config(cls, app: ASGIApp, config: dict[str, Any]) -> IncidentWrites:
        """Around ``app``, for every editable collection of pygeoapi's configuration whose
        feature provider is :class:`IncidentProvider`."""
        collections = [
            name
            for name, resource in config.get("resources", {}).items()
            if any(
                p.get("name") == PROVIDER and p.get("editable")
                for p in resource.get("providers", [])
            )
        ]
        return cls(app, collections)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "").upper() if scope["type"] == "http" else ""
        match = _WRITE_PATH.match(scope.get("path", "")) if method else None
        if match is None or match.group(1) not in self.collections:
            await self.app(scope, receive, send)
            return
        item = match.group(2)
        if method == "OPTIONS" and item is not None:
            await self.app(scope, receive, _allow(send, ITEM_METHODS))  # pygeoapi says DELETE
            return
        if method not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        media = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if method == "POST" and (item is not None or media not in _JSON_MEDIA):
            await self.app(scope, receive, send)  # a CQL2 search, or pygeoapi's own 405
            return
        if method in ("PUT", "PATCH") and item is None:
            await self.app(scope, receive, send)  # pygeoapi's 405
            return
        if method == "DELETE":
            await send_error(
                send,
                405,
                "MethodNotAllowed",
                "incident reports are never deleted (their history is kept): set the status "
                'to resolved instead (PATCH {"properties": {"status": "resolved"}})',
                extra=[(b"allow", ITEM_METHODS.encode())],
            )
            return
        identity: Identity | None = scope.get(SCOPE_IDENTITY)
        if identity is None or identity.anonymous:  # the access control is outside: never here
            await send_error(send, 401, "Unauthorized", "writes need an API key")
            return
        if media not in _JSON_MEDIA:
            await send_error(
                send,
                415,
                "InvalidParameterValue",
                f"Content-Type {media or '(none)'} is not accepted here: send "
                "application/geo+json (application/merge-patch+json for PATCH)",
            )
            return
        content_crs = (header(scope, b"content-crs") or "").strip().strip("<>")
        if content_crs and content_crs not in _CRS84:
            await send_error(
                send,
                400,
                "InvalidParameterValue",
                f"Content-Crs {content_crs}: reports are accepted in CRS84 only "
                "([longitude, latitude] in WGS 84 degrees)",
            )
            return
        body = await _read_body(receive, MAX_BODY)
        if body is None:
            await send_error(
                send,
                413,
                "PayloadTooLarge",
                f"the request body is over {MAX_BODY // 1024} KiB; a report is a point and "
                "a few short texts",
            )
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            await send_error(
                send,
                400,
                "InvalidParameterValue",
                f"the request body is not UTF-8 (byte {exc.start}): JSON is sent as UTF-8",
            )
            return
        writer = Writer(identity.key_id or "", identity.name or "", identity.department or "")
        token = _hand_over(writer, partial=method == "PATCH")
        wrapped = envelope(token, text)
        headers = [
            (k, v)
            for k, v in scope.get("headers", [])
            if k.lower() not in (b"content-type", b"content-length")
        ]
        headers += [
            (b"content-type", b"application/geo+json"),
            (b"content-length", str(len(wrapped)).encode()),
        ]
        inner = dict(scope, headers=headers, method="PUT" if method == "PATCH" else method)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": wrapped, "more_body": False}
            return await receive()

        try:
            await self.app(inner, replay, send)
        finally:
            _PENDING.pop(token, None)  # not consumed (pygeoapi refused before the provider)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it is over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away: what was read is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


# -- the OpenAPI document -----------------------------------------------------------------------
def document_writes(document: dict[str, Any], collections: Iterable[str]) -> dict[str, Any]:
    """Describe the writes of the incident collections as served: PATCH added, DELETE removed.

    pygeoapi documents PUT and DELETE for an editable collection; here DELETE is refused and
    PATCH is accepted. Changes ``document`` in place (pygeoapi's loaded document, before the
    method contract is compiled from it) and returns it.

    >>> doc = {"paths": {"/collections/incidents/items/{featureId}": {
    ...     "get": {}, "put": {"tags": ["incidents"], "parameters": [], "responses": {}},
    ...     "delete": {}}}}
    >>> sorted(document_writes(doc, ["incidents"])["paths"][
    ...     "/collections/incidents/items/{featureId}"])
    ['get', 'patch', 'put']
    """
    for collection in collections:
        item = document.get("paths", {}).get(f"/collections/{collection}/items/{{featureId}}")
        if not item or "put" not in item:
            continue
        item.pop("delete", None)
        put = item["put"]
        put["description"] = (
            "Replace the public fields of a report: geometry, category, description and status "
            "are required; reporter contact fields left out keep their value."
        )
        conflict = {"description": "The status change does not follow new → assigned → resolved"}
        put.setdefault("responses", {})["409"] = conflict
        item["patch"] = {
            "summary": f"Change {collection} items (status, fields)",
            "description": (
                "A JSON merge patch of the feature: only the properties sent change, null "
                'clears an optional one; e.g. {"properties": {"status": "assigned", '
                '"assigned_to": "Hạ Long lighting company"}}.'
            ),
            "tags": list(put.get("tags", [collection])),
            "operationId": f"patch{collection.capitalize()}Features",
            "parameters": list(put.get("parameters", [])),
            "requestBody": {
                "description": "The fields that change",
                "content": {
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/geo+json": {"schema": {"type": "object"}},
                },
                "required": True,
            },
            "responses": dict(put.get("responses", {})),
        }
    return document
