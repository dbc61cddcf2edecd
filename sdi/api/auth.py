"""Access control of the OGC API: public and internal layers, API keys, no anonymous writes.

A pure ASGI middleware in front of pygeoapi. The rules: README, "Access control and API keys";
how hidden collections stay absent and writes are refused: ``docs/internals.md``.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdi.api import formats
from sdi.api.asgi import header, query_parameters, replace_header, send_error, send_response
from sdi.keys import ADMIN, CACHE_TTL, KeyRecord, hash_matches, normalise_department, parse_key
from sdi.layers import Layer

LOGGER = logging.getLogger("sdi.api.auth")

HEADER = "x-api-key"
# Query parameters that would carry a key: refused (and redacted from the access log).
KEY_PARAMETERS = frozenset({"api_key", "apikey", "api-key", "x-api-key"})
# Also masked in the access log, with any value that looks like a key.
_SECRET_PARAMETERS = KEY_PARAMETERS | {"key", "token", "access_token", "password"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The collection id hidden collections are replaced by: no layer file can be named like it.
ABSENT_ID = "sdi-no-such-collection"
SCOPE_IDENTITY = "sdi.identity"

# The JSON forms of the listings filtered here: the landing page, collections, /openapi.
_JSON_TYPES = frozenset(
    formats.media_type(name, route).split(";")[0]
    for name, route in (
        ("json", formats.OTHER),
        ("jsonld", formats.OTHER),
        ("json", formats.OPENAPI),
    )
)
# The paths a collection's write right opens: its items and each item (OGC API Features Part 4).
_ITEMS_PATH = re.compile(r"^/collections/([^/]+)/items(?:/[^/]+)?/?$")
# Executing a process is a read-only computation on public layers, not a write: anyone may
# POST it (sdi.api.processes: asynchronous jobs need a key, and are shown to that key only).
# Only the processes named here; any other process execution stays an administrator's write.
# etl-run (a department's delivery) and export (what the key may read): sdi.api.caller checks
_EXECUTION_PATH = re.compile(r"^/processes/(?:exposure|etl-run|export)/execution/?$")


@dataclass(frozen=True)
class Identity:
    """Who sent a request: anonymous, a department's key, or an administrator's key."""

    key_id: str | None = None
    department: str | None = None
    name: str | None = None  # who the key was issued to (``sdi keys create --name``)
    writes: frozenset[str] = frozenset()  # collections it may write to

    def may_write(self, path: str) -> bool:
        """Whether this identity may send a write (POST, PUT, PATCH, DELETE) to ``path``.

        >>> Identity("k1", "operations", writes=frozenset({"incidents"})).may_write(
        ...     "/collections/incidents/items/7")
        True
        >>> Identity("k1", "operations").may_write("/collections/incidents/items")
        False
        >>> Identity("k2", "*").may_write("/processes/x/execution")
        True
        """
        if self.admin:
            return True
        match = _ITEMS_PATH.match(path)
        return match is not None and match.group(1) in self.writes

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    @property
    def admin(self) -> bool:
        return self.department == ADMIN

    @property
    def label(self) -> str:
        """What the access log says: the department, ``*`` or ``anonymous``."""
        return "anonymous" if self.anonymous else str(self.department)


ANONYMOUS = Identity()


@dataclass(frozen=True)
class Restriction:
    """Who may see a collection besides administrators: any key (None) or these departments."""

    departments: frozenset[str] | None


class AccessPolicy:
    """Which collections each identity may not see, from ``layers/`` and pygeoapi's resources.

    >>> from pathlib import Path
    >>> def layer(id, access="public", departments=()):
    ...     return Layer(id=id, path=Path(id), title=id, description="", table="a.b",
    ...                  properties=("x",), access=access, departments=departments)
    >>> policy = AccessPolicy([layer("lamps"), layer("register", "internal", ("Construction",)),
    ...                        layer("staff", "internal")], ["lamps", "register", "staff", "old"])
    >>> sorted(policy.hidden_for(ANONYMOUS))
    ['old', 'register', 'staff']
    >>> sorted(policy.hidden_for(Identity("k1", "construction")))
    ['old']
    >>> sorted(policy.hidden_for(Identity("k2", "planning")))
    ['old', 'register']
    >>> sorted(policy.hidden_for(Identity("k3", "*")))
    []
    """

    def __init__(self, layers: Iterable[Layer], resource_ids: Iterable[str]) -> None:
        self.restrictions: dict[str, Restriction] = {}
        # Layers that publish personal columns (an internal register): read as the keyed
        # role (sdi.db.roles), which alone is granted those columns.
        self.personal = frozenset(
            layer.id
            for layer in layers
            if layer.publish_personal and set(layer.personal) & set(layer.properties)
        )
        for layer in layers:
            departments = frozenset(normalise_department(d) for d in layer.departments)
            if layer.access == "internal" or departments:
                self.restrictions[layer.id] = Restriction(departments or None)
        known = {layer.id for layer in layers}
        for resource in resource_ids:
            if resource not in known:
                LOGGER.warning(
                    "collection %s is in pygeoapi-config.yml but has no file in layers/: "
                    "only administrators' keys see it (run `sdi publish`)",
                    resource,
                )
                self.restrictions[resource] = Restriction(frozenset())
        if ABSENT_ID in self.restrictions or ABSENT_ID in known:
            raise ValueError(f"{ABSENT_ID} is reserved and cannot be a collection id")
        self._hidden: dict[str | None, frozenset[str]] = {}

    def can_see(self, identity: Identity, collection: str) -> bool:
        restriction = self.restrictions.get(collection)
        if restriction is None or identity.admin:
            return True
        if identity.anonymous:
            return False
        return restriction.departments is None or identity.department in restriction.departments

    def hidden_for(self, identity: Identity) -> frozenset[str]:
        key = None if identity.anonymous else identity.department
        if key not in self._hidden:
            self._hidden[key] = frozenset(
                c for c in self.restrictions if not self.can_see(identity, c)
            )
        return self._hidden[key]


# -- filtering of listings ---------------------------------------------------------------------
def _reference_pattern(hidden: Iterable[str]) -> re.Pattern[str]:
    ids = "|".join(re.escape(h) for h in sorted(hidden))
    return re.compile(rf"/collections/(?:{ids})(?=[/?#]|$)")


def _refers_to(node: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(node, dict) and any(
        isinstance(node.get(k), str) and pattern.search(node[k]) for k in ("href", "@id", "url")
    )


def _drop_references(node: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(node, dict):
        return {k: _drop_references(v, pattern) for k, v in node.items()}
    if isinstance(node, list):
        return [_drop_references(v, pattern) for v in node if not _refers_to(v, pattern)]
    return node


def scrub_listing(document: Any, hidden: frozenset[str]) -> Any:
    """A landing page or collections document without the hidden collections.

    >>> doc = {"collections": [{"id": "a", "links": []}, {"id": "b", "links": []}],
    ...        "links": [{"href": "http://x/collections/b?f=json"},
    ...                  {"href": "http://x/collections/bb"}],
    ...        "dataset": [{"@id": "http://x/collections/b"}]}
    >>> clean = scrub_listing(doc, frozenset({"b"}))
    >>> clean["collections"], clean["links"], clean["dataset"]
    ([{'id': 'a', 'links': []}], [{'href': 'http://x/collections/bb'}], [])
    """
    if not hidden:
        return document
    if isinstance(document, dict) and isinstance(document.get("collections"), list):
        document = dict(document)
        document["collections"] = [
            c
            for c in document["collections"]
            if not (isinstance(c, dict) and c.get("id") in hidden)
        ]
    return _drop_references(document, _reference_pattern(hidden))


def scrub_openapi(document: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    """The OpenAPI document without the paths and tags of hidden collections.

    >>> doc = {"paths": {"/collections/a/items": {}, "/collections/b": {},
    ...                  "/collections/b/items/{featureId}": {}, "/collections/bc": {}},
    ...        "tags": [{"name": "a"}, {"name": "b"}]}
    >>> scrub_openapi(doc, frozenset({"b"}))
    {'paths': {'/collections/a/items': {}, '/collections/bc': {}}, 'tags': [{'name': 'a'}]}
    """
    if not hidden:
        return document
    pattern = _reference_pattern(hidden)
    document = dict(document)
    document["paths"] = {
        path: spec for path, spec in document.get("paths", {}).items() if not pattern.match(path)
    }
    if "tags" in document:
        document["tags"] = [t for t in document["tags"] if t.get("name") not in hidden]
    return _drop_references(document, pattern)


def presented_key(scope: Scope) -> str | None:
    """The key a request carries: ``X-API-Key``, else HTTP Basic's password or a Bearer token.

    Basic is for clients that cannot add a header but can log in, such as QGIS before the
    *API Header* authentication method (user name: anything, password: the key). An
    ``Authorization`` header of another kind gives ``""``, which is refused like a bad key.

    >>> presented_key({"headers": [(b"authorization", b"Basic a2V5OnNkaV94eXo=")]})
    'sdi_xyz'
    >>> presented_key({"headers": [(b"authorization", b"Bearer sdi_xyz")]})
    'sdi_xyz'
    >>> presented_key({"headers": [(b"authorization", b"Digest x")]})
    ''
    >>> presented_key({"headers": []}) is None
    True
    """
    key = header(scope, HEADER.encode())
    if key is not None:
        return key
    authorization = header(scope, b"authorization")
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return ""


class KeyStoreUnavailable(Exception):
    """The key table cannot be read (the warehouse is down)."""


class KeyVerifier:
    """Checks presented keys against ``auth.api_keys``, trusting each answer for ``ttl`` s."""

    def __init__(
        self,
        lookup: Callable[[str], KeyRecord | None],
        ttl: float = CACHE_TTL,
        max_entries: int = 10_000,
    ) -> None:
        self._lookup = lookup
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def identify(self, key: str) -> Identity | None:
        """The identity of a valid key, or None (malformed, unknown, revoked or wrong)."""
        key_id = parse_key(key)
        if key_id is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is None or cached[0] <= now:
            record = await run_in_threadpool(self._lookup, key_id)
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key_id] = (now + self.ttl, record)
        else:
            record = cached[1]
        if record is None:
            return None
        if record.revoked or not hash_matches(key, record.key_sha256):
            return None
        return Identity(key_id, record.department, record.name, record.writes)


def database_lookup(key_id: str) -> KeyRecord | None:
    """Read one key from the warehouse through the API's connection pool."""
    import psycopg
    from psycopg_pool import PoolTimeout

    from sdi.api.db import pool
    from sdi.keys import find_key

    try:
        with pool().connection(timeout=3) as conn:
            return find_key(conn, key_id)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        LOGGER.error(
            "table auth.api_keys is missing or old: run `sdi db upgrade`; every key is refused"
        )
        return None
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise KeyStoreUnavailable(str(exc)) from exc


class AccessControl:
    """The ASGI middleware: identify, refuse, hide and filter (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        policy: AccessPolicy,
        verifier: KeyVerifier,
        pygeoapi_api: Any = None,
        personal_role: str | None = None,
    ) -> None:
        self.app = app
        self.policy = policy
        self.verifier = verifier
        self.api = pygeoapi_api  # pygeoapi's API object: formats, locales, templates
        if personal_role is None and policy.personal:
            from sdi.db.roles import role_names

            personal_role = role_names().personal
        self.personal_role = personal_role
        self._openapi: dict[tuple[frozenset[str], bytes], bytes] = {}  # filtered documents

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"].upper()
        head = method == "HEAD"
        if any(name.lower() in KEY_PARAMETERS for name, _ in query_parameters(scope)):
            await send_error(
                send,
                400,
                "InvalidParameterValue",
                "API keys are accepted only in the X-API-Key header, never in the URL "
                "(URLs are logged and copied into response links); remove it from the URL",
                head=head,
            )
            return

        presented = presented_key(scope)
        identity = ANONYMOUS
        if presented is not None:
            try:
                found = await self.verifier.identify(presented)
            except KeyStoreUnavailable:
                await send_error(
                    send,
                    503,
                    "ServiceUnavailable",
                    "the API key cannot be checked now (the warehouse is not reachable); "
                    "try again shortly",
                    head=head,
                )
                return
            if found is None:
                await send_error(
                    send,
                    401,
                    "InvalidApiKey",
                    "the API key is not valid (mistyped, unknown or revoked); "
                    "ask the SDI service desk for a key",
                    extra=[(b"www-authenticate", b'Basic realm="sdi", charset="UTF-8"')],
                    head=head,
                )
                return
            identity = found
        scope[SCOPE_IDENTITY] = identity

        if method not in SAFE_METHODS and not (
            method == "POST" and _EXECUTION_PATH.match(scope["path"])
        ):
            if identity.anonymous:
                await send_error(
                    send,
                    401,
                    "Unauthorized",
                    f"{method} needs an API key with the right to write here, in the X-API-Key "
                    "header; anonymous writes are not accepted",
                    extra=[(b"www-authenticate", b'Basic realm="sdi", charset="UTF-8"')],
                )
                return
            if not identity.may_write(scope["path"]):
                # Same answer for a collection that is hidden or absent: nothing is revealed.
                await send_error(
                    send,
                    403,
                    "Forbidden",
                    f"this API key may not use {method} here: it can only read; ask the SDI "
                    "service desk for a key with the write right for this collection",
                )
                return
            if method in ("POST", "PUT", "PATCH") and header(scope, b"content-type") is None:
                # pygeoapi 0.24 fails with a 500 on a POST to /items without a Content-Type
                await send_error(
                    send,
                    400,
                    "InvalidParameterValue",
                    f"{method} needs a Content-Type header (application/geo+json to create or "
                    "replace a feature, application/query-cql-json to search)",
                )
                return

        hidden = self.policy.hidden_for(identity)
        inner = self._hide_collection(scope, hidden)
        path = inner["path"]
        if hidden and method in ("GET", "HEAD") and path in ("/", "/collections", "/openapi"):
            await self._filtered(inner, receive, send, hidden, head)
            return
        if self._reads_personal(method, inner["path"], identity):
            from sdi.api.db import PERSONAL_READER

            _carry_context(asyncio.get_running_loop())
            token = PERSONAL_READER.set(self.personal_role)
            try:
                await self.app(inner, receive, send)
            finally:
                PERSONAL_READER.reset(token)
            return
        await self.app(inner, receive, send)

    def _reads_personal(self, method: str, path: str, identity: Identity) -> bool:
        """A read by a key that may see a layer publishing personal columns, of that layer
        (only then does the API switch to the role granted them)."""
        if identity.anonymous or method not in ("GET", "HEAD") or not self.personal_role:
            return False
        parts = path.split("/")
        return (
            len(parts) > 2
            and parts[1] == "collections"
            and parts[2] in self.policy.personal
            and self.policy.can_see(identity, parts[2])
        )

    # -- hidden collections --------------------------------------------------------------------
    @staticmethod
    def _hide_collection(scope: Scope, hidden: frozenset[str]) -> Scope:
        path: str = scope["path"]
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == "collections" and parts[2] in hidden:
            parts[2] = ABSENT_ID
            rewritten = "/".join(parts)
            scope = dict(scope)
            scope["path"] = rewritten
            scope["raw_path"] = quote(rewritten).encode()
        return scope

    # -- listings ------------------------------------------------------------------------------
    async def _filtered(
        self, scope: Scope, receive: Receive, send: Send, hidden: frozenset[str], head: bool
    ) -> None:
        scope = dict(scope)
        scope["method"] = "GET"  # HEAD: compute the filtered body, then send only its headers
        # No compressed bodies to filter (pygeoapi gzips only when configured to).
        scope["headers"] = replace_header(list(scope["headers"]), b"accept-encoding", None)
        html = scope["path"] == "/collections" and self._wants_html(scope)
        if html:
            params = [(k, v) for k, v in query_parameters(scope) if k != "f"] + [("f", "json")]
            scope["query_string"] = urlencode(params).encode()
            scope["headers"] = replace_header(scope["headers"], b"accept", b"application/json")
        status, headers, body = await self._buffered(scope, receive)
        content_type = header(headers, b"content-type") or ""
        cache_key = (hidden, hashlib.sha256(body).digest())
        if scope["path"] == "/openapi" and status == 200 and cache_key in self._openapi:
            body = self._openapi[cache_key]  # the document only changes with a restart
        elif status == 200 and content_type.split(";")[0].strip() in _JSON_TYPES:
            document = json.loads(body)
            if scope["path"] == "/openapi":
                document = scrub_openapi(document, hidden)
                body = json.dumps(document, separators=(",", ":")).encode()
                if len(self._openapi) > 32:
                    self._openapi.clear()
                self._openapi[cache_key] = body
            else:
                document = scrub_listing(document, hidden)
                if html:
                    rendered = await run_in_threadpool(self._render_collections, scope, document)
                    body = rendered.encode()
                    headers = replace_header(headers, b"content-type", b"text/html")
                else:
                    body = json.dumps(document, separators=(",", ":")).encode()
        headers = replace_header(headers, b"content-length", str(len(body)).encode())
        await send_response(send, status, headers, body, head)

    async def _buffered(self, scope: Scope, receive: Receive) -> tuple[int, list, bytes]:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start["status"], list(start.get("headers", [])), b"".join(chunks)

    def _wants_html(self, scope: Scope) -> bool:
        if self.api is None:
            return False
        from pygeoapi.api import APIRequest

        return APIRequest(Request(scope), self.api.locales).format == "html"

    def _render_collections(self, scope: Scope, document: dict[str, Any]) -> str:
        """pygeoapi's own collections page, from the filtered JSON document."""
        from pygeoapi.api import APIRequest
        from pygeoapi.util import render_j2_template

        locale = APIRequest(Request(scope), self.api.locales).locale
        for link in document.get("links", []):
            if link.get("type") == "text/html":
                link["rel"] = "self"
            elif link.get("rel") == "self":
                link["rel"] = "alternate"
        document["base_url"] = self.api.base_url
        document["collections_path"] = self.api.get_collections_url()
        return render_j2_template(
            self.api.tpl_config,
            self.api.config["server"]["templates"],
            "collections/index.html",
            document,
            locale,
        )


class _ContextThreadPool(ThreadPoolExecutor):
    """An event loop's default executor that runs each call in the caller's context:
    pygeoapi hands a request to ``loop.run_in_executor``, which does not copy context
    variables, and the keyed role (:data:`sdi.api.db.PERSONAL_READER`) must reach its
    provider's thread."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


_LOOPS_CARRYING: set[int] = set()


def _carry_context(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop``'s default executor a :class:`_ContextThreadPool` (once per loop)."""
    if id(loop) not in _LOOPS_CARRYING:
        _LOOPS_CARRYING.add(id(loop))
        loop.set_default_executor(_ContextThreadPool(thread_name_prefix="sdi-api"))


def redact_query(query: str, limit: int = 2000) -> str:
    """The query string for a log line: key-like parameters masked, long values cut.

    >>> redact_query("f=json&API_KEY=sdi_abc_secret&limit=5")
    'f=json&API_KEY=REDACTED&limit=5'
    >>> redact_query("%61pi_key=sdi_x&q=sdi_abcdefgh12_0123456789abcdef0123456789abcdef0123")
    'api_key=REDACTED&q=REDACTED'
    """
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [
        (k, "REDACTED" if k.lower() in _SECRET_PARAMETERS or parse_key(v) else v) for k, v in pairs
    ]
    text = urlencode(masked, safe=",:/")
    return text if len(text) <= limit else text[:limit] + "…"
