"""Who executes a process: the caller, written into the inputs of the processes that need it.

pygeoapi gives a processor its inputs only, and an asynchronous job runs later, in
``sdi worker``, far from the request. So for the processes that decide by their caller (a
delivery: ``etl-run``; an export of what a key may read: ``export``), :class:`ProcessCaller`
(ASGI middleware, inside the access control) reads the identity the access control found and
writes it into the inputs as ``_caller`` — a client's own ``_caller`` is replaced — and the
processor checks again with :meth:`Caller.from_inputs`, wherever it runs.

Each such process gives a :class:`CallerRule`: whether anonymous callers are refused (401),
how large its body may be (413), and a check of caller and inputs run before the job exists
(a :class:`CallerRefused` is answered as an OGC exception), so that a request the process
would refuse never becomes a job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CALLER_INPUT = "_caller"
ADMIN = "*"
_PREFIX, _SUFFIX = "/processes/", "/execution"


@dataclass(frozen=True)
class Caller:
    """Who executed a process: an API key (its id and department, ``*`` for administrators)
    or nobody (anonymous); and whether the execution was asked to be asynchronous."""

    key_id: str | None = None
    department: str | None = None
    respond_async: bool = False

    @property
    def anonymous(self) -> bool:
        return self.key_id is None

    @property
    def admin(self) -> bool:
        return self.department == ADMIN

    def as_input(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "department": self.department,
            "respond_async": self.respond_async,
        }

    @classmethod
    def from_inputs(cls, inputs: Any) -> Caller | None:
        """The caller :class:`ProcessCaller` wrote into ``inputs``; None when there is none.

        >>> Caller.from_inputs({"job": "x", "_caller": {"key_id": "k", "department": "land"}})
        Caller(key_id='k', department='land', respond_async=False)
        >>> Caller.from_inputs({"job": "x"}) is None
        True
        """
        value = inputs.get(CALLER_INPUT) if isinstance(inputs, dict) else None
        if not isinstance(value, dict):
            return None
        key_id, department = value.get("key_id"), value.get("department")
        return cls(
            key_id if isinstance(key_id, str) else None,
            department if isinstance(department, str) else None,
            value.get("respond_async") is True,
        )


class CallerRefused(Exception):
    """A request the process will not take, answered before a job exists."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class CallerRule:
    """How :class:`ProcessCaller` treats the executions of one process.

    ``anonymous``: the 401 message for a request without a key (None: anonymous callers are
    let through, as ``Caller()``); ``max_body``: (bytes, 413 message) of the request body
    (None: the general body limit of :mod:`sdi.api.limits` only); ``check``: raises
    :class:`CallerRefused` for a caller or inputs the process refuses, and may return more
    fields to record with the caller (etl-run: the department that owns the job).
    """

    anonymous: str | None = None
    max_body: Callable[[], tuple[int, str]] | None = None
    check: Callable[[Caller, dict[str, Any]], Mapping[str, Any] | None] | None = None


def _wants_async(scope: Scope) -> bool:
    return any(
        name.lower() == b"prefer" and b"respond-async" in value for name, value in scope["headers"]
    )


class ProcessCaller:
    """ASGI middleware: for ``POST /processes/{id}/execution`` of a process with a rule,
    refuses what the rule refuses and writes the caller into the inputs (module docstring)."""

    def __init__(self, app: ASGIApp, rules: Mapping[str, CallerRule]) -> None:
        self.app = app
        self.rules = dict(rules)

    def _rule(self, scope: Scope) -> CallerRule | None:
        if scope["type"] != "http" or scope["method"].upper() != "POST":
            return None
        path = scope["path"].rstrip("/")
        if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
            return None
        return self.rules.get(path[len(_PREFIX) : -len(_SUFFIX)])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._rule(scope)
        if rule is None:
            await self.app(scope, receive, send)
            return
        from sdi.api.asgi import send_error
        from sdi.api.auth import ANONYMOUS, SCOPE_IDENTITY

        identity = scope.get(SCOPE_IDENTITY, ANONYMOUS)
        if identity.anonymous and rule.anonymous is not None:
            await send_error(
                send,
                401,
                "Unauthorized",
                rule.anonymous,
                extra=[(b"www-authenticate", b'Basic realm="sdi", charset="UTF-8"')],
            )
            return
        caller = Caller(identity.key_id, identity.department, _wants_async(scope))
        limit, too_large = rule.max_body() if rule.max_body else (None, "")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if limit is not None and len(body) > limit:
                await send_error(send, 413, "PayloadTooLarge", too_large)
                return
            if not message.get("more_body"):
                break
        try:
            request = json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            request = None  # pygeoapi answers what is not a JSON object itself
        if isinstance(request, dict) and isinstance(request.get("inputs"), dict):
            inputs = request["inputs"]
            inputs.pop(CALLER_INPUT, None)
            try:
                recorded = rule.check(caller, inputs) if rule.check is not None else None
            except CallerRefused as exc:
                await send_error(send, exc.status, exc.code, str(exc))
                return
            inputs[CALLER_INPUT] = {**caller.as_input(), **(recorded or {})}
            body = json.dumps(request).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)
