"""ASGI plumbing shared by the API's middlewares, and the one OGC exception body.

Every error the service writes itself — a refused key, a parameter the OpenAPI document does
not allow, a method no route takes, a dashboard file that is missing, an unexpected
exception — is an OGC exception body, JSON ``{"code", "type", "description"}`` labelled
``application/json``, made by :func:`ogc_exception` here: sent from a pure ASGI middleware
with :func:`send_error`, or returned from a Starlette handler as :func:`error_response`.
(pygeoapi writes its own for the errors it answers; ``type`` repeats ``code`` as there.)

Also here: sending a whole body (:func:`send_body`, :func:`send_response`), reading and
replacing headers (:func:`header`, :func:`replace_header`) and the query parameters of a
request (:func:`query_parameters`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import Scope, Send

Headers = list[tuple[bytes, bytes]]

JSON = "application/json"


def ogc_exception(code: str, description: str) -> bytes:
    """The body of an OGC exception: ``code`` (also as ``type``) and a ``description``.

    >>> ogc_exception("NotFound", "no such tile")
    b'{"code":"NotFound","type":"NotFound","description":"no such tile"}'
    """
    body = {"code": code, "type": code, "description": description}
    return json.dumps(body, separators=(",", ":")).encode()


def error_response(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    """An OGC exception as a Starlette response (for route handlers and exception handlers)."""
    return Response(ogc_exception(code, description), status, headers, media_type=JSON)


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: str = JSON,
    extra: Iterable[tuple[bytes, bytes]] = (),
    head: bool = False,
) -> None:
    """Answer with ``body`` whole, its type and length, and ``extra`` headers."""
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send_response(send, status, headers, body, head)


async def send_response(
    send: Send, status: int, headers: Headers, body: bytes, head: bool = False
) -> None:
    """Answer with these headers and ``body`` in one message (no body for a HEAD request:
    its headers are those of the GET)."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_error(
    send: Send,
    status: int,
    code: str,
    description: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
    head: bool = False,
) -> None:
    """Answer with an OGC exception (``extra`` headers: ``Allow``, ``WWW-Authenticate``…)."""
    await send_body(send, status, ogc_exception(code, description), extra=extra, head=head)


def query_parameters(scope: Scope) -> list[tuple[str, str]]:
    """The request's query parameters, in order, blank values kept.

    >>> query_parameters({"query_string": b"f=json&limit=&f=html"})
    [('f', 'json'), ('limit', ''), ('f', 'html')]
    """
    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def header(scope_or_headers: Scope | Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of header ``name`` (lower case) of a request scope or a header list.

    >>> header({"headers": [(b"Content-Type", b"text/csv")]}, b"content-type")
    'text/csv'
    >>> header([(b"allow", b"GET")], b"content-type") is None
    True
    """
    headers = (
        scope_or_headers.get("headers", [])
        if isinstance(scope_or_headers, Mapping)
        else scope_or_headers
    )
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def replace_header(
    headers: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes | None
) -> Headers:
    """``headers`` without ``name`` (lower case), then ``name: value`` unless ``value`` is None.

    >>> replace_header([(b"Allow", b"GET, DELETE"), (b"x", b"1")], b"allow", b"GET")
    [(b'x', b'1'), (b'allow', b'GET')]
    """
    kept = [(k, v) for k, v in headers if k.lower() != name]
    return [*kept, (name, value)] if value is not None else kept


NOT_FOUND = "Collection not found"  # pygeoapi's own words for an unknown collection


async def layer_of_get[T](
    scope: Scope, send: Send, layers: Mapping[str, T], collection: str, only_get: str
) -> T | None:
    """The layer a GET (or HEAD) of a route under ``/collections/{collection}/`` is about; None
    once another method has been answered 405 (``only_get`` says so) or an unknown collection,
    or one hidden from this caller (renamed by the access control), 404."""
    head = scope["method"] == "HEAD"
    if scope["method"] not in ("GET", "HEAD"):
        await send_error(
            send, 405, "MethodNotAllowed", only_get, extra=[(b"allow", b"GET, HEAD")], head=head
        )
        return None
    layer = layers.get(collection)
    if layer is None:
        await send_error(send, 404, "NotFound", NOT_FOUND, head=head)
    return layer
