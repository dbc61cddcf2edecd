"""The OpenAPI document is the contract: query parameters and methods are checked against it.

:class:`QueryContract` (inside the access control) answers a query parameter the served
document does not allow with a 400; :class:`MethodContract` (outside it) a method no path of
that shape has with a 405. What is checked, and why: ``docs/api-contract.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from sdi.api.asgi import send_error
from sdi.api.openapi import resolve

Check = Callable[[str], str | None]  # raw value → None, or what is wrong with it

_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEANS = ("true", "false")


def _scalar_check(schema: dict[str, Any]) -> Check:
    kind = schema.get("type", "string")
    enum = schema.get("enum")
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    min_length, max_length = schema.get("minLength"), schema.get("maxLength")
    fmt = schema.get("format")

    def bounds(number: float) -> str | None:
        if minimum is not None and number < minimum:
            return f"must be at least {minimum}"
        if maximum is not None and number > maximum:
            return f"must be at most {maximum}"
        return None

    def check(value: str) -> str | None:
        if kind == "integer":
            if not _INTEGER.fullmatch(value):
                return "must be an integer"
            return bounds(int(value))
        if kind == "number":
            if not _NUMBER.fullmatch(value) or not math.isfinite(float(value)):
                return "must be a number"
            return bounds(float(value))
        if kind == "boolean":
            return None if value in _BOOLEANS else "must be true or false"
        if enum is not None and value not in enum:
            return "must be one of: " + ", ".join(str(v) for v in enum)
        if min_length is not None and len(value) < min_length:
            return f"must have at least {min_length} characters"
        if max_length is not None and len(value) > max_length:
            return f"must have at most {max_length} characters"
        if pattern is not None and not pattern.search(value):
            return f"must match {pattern.pattern}"
        if fmt == "date-time" and not _is_datetime(value):
            return "must be an RFC 3339 date-time (2025-10-01T08:00:00Z)"
        if fmt == "date" and not _is_date(value):
            return "must be a date (2025-10-01)"
        return None

    return check


def _is_datetime(value: str) -> bool:
    if len(value) < 20 or value[10] not in "Tt" or value[-1:] not in "Zz+-0123456789":
        return False
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def parameter_check(schema: dict[str, Any]) -> Check:
    """The check of one query parameter's raw value against its (resolved) schema."""
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:  # e.g. a bbox of 4 or 6 numbers
        base = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        checks = [parameter_check({**base, **alternative}) for alternative in alternatives]

        def check_any(value: str) -> str | None:
            problems = [check(value) for check in checks]
            found = [p for p in problems if p is not None]
            return None if len(found) < len(problems) else " or ".join(dict.fromkeys(found))

        return check_any
    if schema.get("type") != "array":
        return _scalar_check(schema)
    item = _scalar_check(schema.get("items", {}))
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")

    def check(value: str) -> str | None:
        items = value.split(",")  # form style ("" is one empty value: [] cannot be told apart)
        if min_items is not None and len(items) < min_items:
            return f"must have at least {min_items} comma-separated values"
        if max_items is not None and len(items) > max_items:
            return f"must have at most {max_items} comma-separated values"
        for part in items:
            problem = item(part)
            if problem:
                return f"value {part!r} {problem}"
        return None

    return check


class Contract:
    """The query parameters of every GET operation of an OpenAPI document, compiled."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.exact: dict[str, dict[str, Check]] = {}
        # templated paths by collection id (None: not under /collections/<id>): a request
        # is matched against its own collection's few paths only
        self.templated: dict[str | None, list[tuple[re.Pattern[str], dict[str, Check]]]] = {}
        for path, item in (document.get("paths") or {}).items():
            operation = (item or {}).get("get")
            if not operation:
                continue
            checks: dict[str, Check] = {}
            for raw in [*item.get("parameters", []), *operation.get("parameters", [])]:
                parameter = resolve(document, raw)
                if parameter.get("in") != "query":
                    continue
                schema = resolve(document, parameter.get("schema") or {})
                if schema.get("type") == "object":  # free-form vendor parameters
                    continue
                checks[parameter["name"]] = parameter_check(schema)
            if "{" in path:
                regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
                entry = (re.compile(regex + "/?"), checks)
                collection = _collection(path)
                if collection and collection.startswith("{"):  # /collections/{collectionId}/…
                    collection = "*"
                self.templated.setdefault(collection, []).append(entry)
            else:
                self.exact[path] = checks

    def checks_for(self, path: str) -> dict[str, Check] | None:
        found = self.exact.get(path)
        if found is None and len(path) > 1 and path.endswith("/"):
            found = self.exact.get(path.rstrip("/"))
        if found is not None:
            return found
        candidates = [*self.templated.get(_collection(path), ()), *self.templated.get("*", ())]
        for regex, checks in candidates:
            if regex.fullmatch(path):
                return checks
        return None

    def problem(self, path: str, query: bytes) -> str | None:
        """What is wrong with the query string of a GET on ``path`` (None: nothing)."""
        checks = self.checks_for(path)
        if not checks or not query:
            return None
        seen: set[str] = set()
        pairs = parse_qsl(
            query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace"
        )
        for name, value in pairs:
            check = checks.get(name)
            if check is None:
                continue
            if name in seen:
                return f"parameter {name} is given more than once"
            seen.add(name)
            problem = check(value)
            if problem:
                return f"parameter {name}: {problem} (the OpenAPI document, /openapi, lists them)"
        return None

    @staticmethod
    def without_idle(query: bytes) -> bytes:
        """The query without parameters that qualify one that is absent (``bbox-crs``
        without ``bbox``: pygeoapi would refuse what describes nothing)."""
        if b"bbox-crs" not in query:
            return query
        pairs = query.split(b"&")
        names = {pair.split(b"=", 1)[0] for pair in pairs}
        if b"bbox" in names:
            return query
        return b"&".join(p for p in pairs if p.split(b"=", 1)[0] != b"bbox-crs")


class QueryContract:
    """ASGI middleware: a GET whose query the document does not allow gets a 400."""

    def __init__(self, app: ASGIApp, document: dict[str, Any]) -> None:
        self.app = app
        self.contract = Contract(document)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            problem = self.contract.problem(scope.get("path", ""), scope.get("query_string", b""))
            if problem:
                await send_error(
                    send,
                    400,
                    "InvalidParameterValue",
                    problem,
                    head=scope["method"] == "HEAD",
                )
                return
            query = scope.get("query_string", b"")
            kept = self.contract.without_idle(query)
            if kept != query:
                scope = dict(scope, query_string=kept)
        await self.app(scope, receive, send)


_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _collection(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "collections" and parts[2] else None


def _shape(path: str, any_collection: bool = True) -> str:
    """A documented path as a regex where path variables (and, for a shape, the collection
    id) match any segment."""
    parts = path.rstrip("/").split("/")
    if any_collection and len(parts) > 2 and parts[1] == "collections":
        parts[2] = "{collectionId}"
    regex = "/".join(
        "[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part)
        for part in parts
    )
    return regex + "/?"


class MethodContract:
    """ASGI middleware: 405 for a method the document does not have for the request's path.

    Under a public collection, the methods of that very path; under any other collection id
    (hidden from some clients, or missing), those of every documented path of that shape, so
    that a hidden collection answers exactly as one that does not exist.
    """

    def __init__(
        self,
        app: ASGIApp,
        document: dict[str, Any],
        public: Callable[[str], bool] = lambda collection: False,
    ) -> None:
        self.app = app
        shapes: dict[str, set[str]] = {}
        exact: dict[str, dict[str, set[str]]] = {}  # collection → path regex → methods
        for path, item in (document.get("paths") or {}).items():
            methods = {m.upper() for m in (item or {}) if m in _HTTP_METHODS}
            if "GET" in methods:
                methods.add("HEAD")
            methods.add("OPTIONS")  # CORS preflights are answered wherever a path exists
            shapes.setdefault(_shape(path), set()).update(methods)
            collection = _collection(path)
            if collection and public(collection):
                paths = exact.setdefault(collection, {})
                paths.setdefault(_shape(path, any_collection=False), set()).update(methods)
        self.public = set(exact)
        self.exact = {
            collection: [(re.compile(regex), methods) for regex, methods in paths.items()]
            for collection, paths in exact.items()
        }
        self.shapes = [(re.compile(regex), methods) for regex, methods in shapes.items()]

    def allowed(self, path: str) -> set[str] | None:
        """The methods the document has for ``path``; None if it has no such path."""
        collection = _collection(path)
        table = self.exact.get(collection, ()) if collection in self.public else self.shapes
        for regex, methods in table:
            if regex.fullmatch(path):
                return methods
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            methods = self.allowed(scope.get("path", ""))
            if methods is not None and scope.get("method") not in methods:
                allow = ", ".join(sorted(methods))
                await send_error(
                    send,
                    405,
                    "MethodNotAllowed",
                    f"{scope.get('method')} is not allowed here; allowed: {allow}",
                    extra=[(b"allow", allow.encode())],
                )
                return
        await self.app(scope, receive, send)
