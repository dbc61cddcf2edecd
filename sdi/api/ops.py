"""Operations: ``/healthz``, Prometheus ``/metrics``, JSON access log, last-resort error body.

The outermost ASGI middleware of the served app. The endpoints and files: README,
"Operations"; the details (caching, metrics folders, log rotation, 405/400/500 bodies):
``docs/internals.md``.
While the database is away every data route answers 503 with ``Retry-After``
(:class:`ServerErrors`); redirects are relative (``docs/security.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdi.api import db, replicas
from sdi.api.asgi import header, replace_header, send_body, send_error
from sdi.api.auth import ANONYMOUS, SCOPE_IDENTITY, redact_query
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.api.ops")

HEALTH_TTL = 1.0  # seconds a health answer is reused by a worker
MAX_QUERY = 16_384  # characters of query string accepted
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
_ERROR_CODES = {404: "NotFound", 405: "MethodNotAllowed"}
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


# -- Prometheus --------------------------------------------------------------------------------
def _start_time(pid: int) -> str:
    """The kernel's start time of a process (to tell a pid from a reused one), or ''."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(folder: str) -> bool:
    pid, _, started = folder.partition("-")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _start_time(int(pid)) == started


def prepare_multiprocess_dir(state_dir: Path) -> Path | None:
    """Point prometheus_client at this server run's folder; call before importing it.

    The folder is named after the uvicorn supervisor (the worker's parent process) or, with
    a single worker, the process itself, so every worker of one run shares it and a new run
    starts from zero. Returns None when prometheus_client was imported earlier without it
    (then each worker reports its own counts).
    """
    if os.environ.get(MULTIPROC_ENV):
        return Path(os.environ[MULTIPROC_ENV])
    import sys

    if "prometheus_client" in sys.modules:
        return None
    parent = multiprocessing.parent_process()
    owner = parent.pid if parent is not None and parent.pid is not None else os.getpid()
    base = state_dir / "server" / "metrics"
    base.mkdir(parents=True, exist_ok=True)
    directory = base / f"{owner}-{_start_time(owner)}"
    for old in base.iterdir():
        if old.is_dir() and old != directory and not _alive(old.name):
            shutil.rmtree(old, ignore_errors=True)
    directory.mkdir(exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory


class Metrics:
    """The request metrics of this worker, and their exposition (summed over workers)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV)) and (
            values.ValueClass.__name__ != "MutexValue"
        )
        if self.multiprocess:
            self._forget_dead_workers(Path(os.environ[MULTIPROC_ENV]))
        own = CollectorRegistry()
        self.requests = Counter(
            "sdi_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=own,
        )
        self.duration = Histogram(
            "sdi_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=own,
        )
        self.in_flight = Gauge(
            "sdi_http_requests_in_flight",
            "HTTP requests being answered",
            multiprocess_mode="livesum",
            registry=own,
        )
        self._own = own

    @staticmethod
    def _forget_dead_workers(directory: Path) -> None:
        from prometheus_client import multiprocess

        pids = {
            int(m.group(1))
            for f in directory.glob("gauge_live*.db")
            if (m := re.search(r"_(\d+)\.db$", f.name))
        }
        for pid in pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                multiprocess.mark_process_dead(pid, str(directory))
            except PermissionError:
                pass

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self._own), CONTENT_TYPE_LATEST


# -- access log --------------------------------------------------------------------------------
class AccessLog:
    """JSON lines appended to one file by every worker (one ``write`` per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._checked = 0.0

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        st = os.fstat(self._fd)
        self._identity = (st.st_dev, st.st_ino)

    def write(self, record: dict[str, Any]) -> None:
        now = time.monotonic()
        try:
            if self._fd is None:
                self._open()
            elif now - self._checked > 1.0:  # rotated away? reopen
                self._checked = now
                try:
                    st = os.stat(self.path)
                    if (st.st_dev, st.st_ino) != self._identity:
                        self._open()
                except FileNotFoundError:
                    self._open()
            assert self._fd is not None  # _open() set it, or raised
            os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        except OSError as exc:  # a full disk must not take the API down
            LOGGER.error("cannot write the access log %s: %s", self.path, exc)


# -- the server's own log --------------------------------------------------------------------
MAX_LOGGED = 500  # characters of a log message kept (echoed values are truncated)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # written as \xNN: a log line stays one text line


class OneLine(logging.Formatter):
    """One line per record: newlines escaped, the message cut at :data:`MAX_LOGGED`, and a
    traceback only for errors (a client's mistake is a warning: one line, no traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_LOGGED:
            message = message[:MAX_LOGGED] + f"… ({len(message)} characters)"
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {message}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += " | " + self.formatException(record.exc_info)
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line.replace("\n", "\\n"))


class _SharedRotatingHandler(logging.handlers.RotatingFileHandler):
    """Size-capped, mode 0640, and safe with several workers appending to one file (each
    reopens the file when another has rotated it away)."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8")

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        try:
            st = os.stat(self.baseFilename)
            if self.stream is not None and (st.st_ino != os.fstat(self.stream.fileno()).st_ino):
                self.stream.close()
                self.stream = self._open()
        except OSError:
            pass
        return bool(super().shouldRollover(record))


def _client_error_noise(record: logging.LogRecord) -> bool:
    """Drop pygeoapi's own ERROR line about a request it then answers with an error (``Bad
    CQL text: …`` and the like, without traceback): its answer is logged once, as a warning
    for a 4xx (:mod:`sdi.api.pygeoapi_patches`). Drop too the warning pygeoapi 0.24 writes
    for every items request without ``offset`` (the ``TypeError`` of ``int(None)``): one
    line per ordinary read would fill the log and rotate the useful lines out."""
    if record.name == "pygeoapi.api.itemtypes" and isinstance(record.msg, TypeError):
        return False
    return not (
        record.name.startswith("pygeoapi.api.")
        and record.levelno >= logging.ERROR
        and not record.exc_info
    )


def configure_logging(path: Path, max_bytes: int, backups: int) -> None:
    """The workers' log: ``path`` rotated at ``max_bytes`` with ``backups`` kept, one line
    per record (:class:`OneLine`); replaces pygeoapi's handlers (it logs to stdout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _SharedRotatingHandler(path, maxBytes=max_bytes, backupCount=backups, delay=True)
    handler.setFormatter(OneLine())
    handler.addFilter(_client_error_noise)
    root = logging.getLogger()
    for old in list(root.handlers):  # pygeoapi's (stdout, multi-line) and an earlier call's
        root.removeHandler(old)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in ("pygeoapi", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.WARNING)


def instance_name() -> str:
    """This API instance's name (``SDI_INSTANCE``, set by ``sdi serve --instances``), else
    host:port of the settings: the label of its metrics and its /healthz."""
    settings = get_settings()
    return settings.instance or f"{settings.host}:{settings.port}"


# -- health ------------------------------------------------------------------------------------
class HealthCheck:
    """Whether the warehouse answers, asked at most once per ``ttl`` seconds."""

    def __init__(self, probe: Callable[[], Awaitable[None]], ttl: float = HEALTH_TTL) -> None:
        self._probe = probe
        self.ttl = ttl
        self._at = -1e9
        self._ok = False
        self._lock = asyncio.Lock()

    async def _run_probe(self) -> bool:
        try:
            await self._probe()
            return True
        except Exception as exc:
            LOGGER.warning("health check: the warehouse does not answer: %s", exc)
            return False

    async def database_ok(self) -> bool:
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                self._ok = await self._run_probe()
                self._at = time.monotonic()
            return self._ok


class DatabaseProbe:
    """``SELECT 1`` within ``timeout`` seconds on a connection of the probe's own, asynchronous:
    no server thread and no wait behind the read pool, which a read load keeps busy (through
    the pool, /healthz p99 went over 1 s under the process flood of ``bench/load.py``). After
    a failure, and while the pool knows the database away, the pool must hand out a connection
    too before the answer is "ok": a balancer then sends requests only to an instance whose
    requests will be served."""

    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout
        self._conn: psycopg.AsyncConnection | None = None
        self._pool_ok = False

    async def __call__(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        db.api_url(), **db.session_kwargs()
                    )
                await self._conn.execute("SELECT 1")
        except BaseException:
            self._pool_ok = False
            conn, self._conn = self._conn, None  # the next probe connects afresh
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        if not self._pool_ok or db.away():
            await run_in_threadpool(self._pool_probe)
            self._pool_ok = True

    def _pool_probe(self) -> None:
        with db.pool().connection(timeout=self.timeout) as conn:
            conn.execute("SELECT 1").fetchone()


# -- routes ------------------------------------------------------------------------------------
def route_templates(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) of Starlette routes, in their matching order; ``{x:path}`` → ``{x}``."""
    return [
        (route.path_regex, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in routes
        if hasattr(route, "path_regex")
    ]


class PlainErrorsAsOgc:
    """A ``send`` that turns Starlette's plain-text error answers into OGC exception bodies.

    Starlette answers an unknown path (404) or a method a route does not take (405) with
    ``text/plain``; clients of an OGC API expect ``code`` and ``description`` in JSON.
    """

    def __init__(self, send: Send, method: str) -> None:
        self.send = send
        self.method = method
        self.held: Message | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            plain = (header(message.get("headers", []), b"content-type") or "").startswith(
                "text/plain"
            )
            if message["status"] >= 400 and plain:
                self.held = message
                return
        elif message["type"] == "http.response.body" and self.held is not None:
            if message.get("more_body", False):
                return
            status = self.held["status"]
            headers = [
                (k, v)
                for k, v in self.held.get("headers", [])
                if k.lower() not in (b"content-type", b"content-length")
            ]
            allow = header(headers, b"allow")
            if status == 404:
                description = "no such endpoint; the OpenAPI document (/openapi) lists them"
            elif status == 405:
                description = f"{self.method} is not allowed here" + (
                    f"; allowed: {allow}" if allow else ""
                )
            else:
                description = message.get("body", b"").decode("utf-8", "replace")[:200]
            self.held = None
            await send_error(
                self.send,
                status,
                _ERROR_CODES.get(status, "NoApplicableCode"),
                description,
                extra=headers,
                head=self.method == "HEAD",
            )
            return
        await self.send(message)


class ServerErrors:
    """A ``send`` that holds a ``500`` until its body is complete, so that it can be answered
    as a ``503`` with ``Retry-After`` when the database is the cause; adds ``Retry-After``
    to every ``503``."""

    def __init__(self, send: Send, head: bool = False) -> None:
        self.send = send
        self.head = head
        self.held: list[Message] = []
        self.complete = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if 300 <= message["status"] < 400:
                location = header(message.get("headers", []), b"location")
                if location is not None:
                    message = dict(message)
                    message["headers"] = replace_header(
                        message.get("headers", []),
                        b"location",
                        relative_location(location).encode("latin-1"),
                    )
            if message["status"] == 500:
                self.held = [message]
                return
            if (
                message["status"] == 503
                and header(message.get("headers", []), b"retry-after") is None
            ):
                message = dict(message)
                message["headers"] = replace_header(
                    message.get("headers", []), b"retry-after", str(db.retry_after()).encode()
                )
        elif message["type"] == "http.response.body" and self.held:
            self.held.append(message)
            if not message.get("more_body", False):
                self.complete = True
                await self.finish(db.away() or replicas.lost_recently())
            return
        await self.send(message)

    async def finish(self, unavailable: bool) -> bool:
        """Send the held ``500`` (as a ``503`` if ``unavailable``); False if none is held."""
        if not self.held:
            return False
        held, self.held = self.held, []
        if unavailable:
            await unavailable_response(self.send, self.head)
        else:
            for message in held:
                await self.send(message)
        return True


def relative_location(location: str) -> str:
    """The path and query of a redirect's target (a ``Location`` never names a host).

    >>> relative_location("http://evil.example/collections?f=json")
    '/collections?f=json'
    >>> relative_location("//evil.example/x"), relative_location("/a/b")
    ('/x', '/a/b')
    """
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/\\")  # never "//host" (nor "/\\host"): another site
    return path + (f"?{parts.query}" if parts.query else "")


async def unavailable_response(send: Send, head: bool = False) -> None:
    await send_error(
        send,
        503,
        "ServiceUnavailable",
        db.UNAVAILABLE_MESSAGE,
        extra=[(b"retry-after", str(db.retry_after()).encode())],
        head=head,
    )


class Operations:
    """The ASGI middleware: operations endpoints, metrics, access log, last-resort 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        access_log: AccessLog,
        health: HealthCheck,
        routes: list[tuple[re.Pattern[str], str]],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.health = health
        self.routes = routes

    def route_of(self, path: str) -> str:
        if path in ("/healthz", "/metrics"):
            return path
        if path.startswith("/static/"):
            return "/static/{path}"
        for regex, template in self.routes:
            if regex.match(path):
                return template
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = {"status": None, "bytes": 0, "done": False}

        # Reads may go to a replica, writes to the primary; a write's answer says where the
        # primary's WAL reached, for the client's next reads (sdi.api.replicas).
        replicas.propagate_context()
        intent = replicas.begin(scope["method"], scope["path"], scope.get("headers", []))

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                extra = replicas.response_headers(intent)
                if extra:
                    message = dict(message)
                    message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
                state["done"] = not message.get("more_body", False)
            await send(message)

        self.metrics.in_flight.inc()
        guard = ServerErrors(observed_send, head=scope["method"].upper() == "HEAD")
        try:
            await self._answer(scope, receive, guard)
            await guard.finish(db.away() or replicas.lost_recently())  # a 500 cut short
        except Exception as exc:
            unavailable = db.away() or db.is_unavailable(exc)
            if unavailable:
                LOGGER.error(
                    "database unavailable on %s %s: %s",
                    scope["method"],
                    scope["path"],
                    " ".join(str(exc).split())[:300],
                )
            if await guard.finish(unavailable):
                pass  # answered (Starlette's error handler re-raises after answering)
            elif state["status"] is None:
                if unavailable:
                    await unavailable_response(observed_send)
                else:
                    LOGGER.exception("unhandled error on %s %s", scope["method"], scope["path"])
                    await send_error(
                        observed_send,
                        500,
                        "NoApplicableCode",
                        "internal error; it has been logged",
                    )
            elif not state["done"]:
                raise  # the body was cut: let the server drop the connection
            # else: answered already (Starlette's error handler re-raises after answering)
        finally:
            self.metrics.in_flight.dec()
            self._record(scope, state, time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"].upper()
        head = method == "HEAD"
        if path == "/healthz":
            if method not in ("GET", "HEAD"):
                await send_error(send, 405, "MethodNotAllowed", "use GET /healthz")
                return
            ok = await self.health.database_ok()
            body: dict[str, Any] = {
                "status": "ok" if ok else "unavailable",
                "database": "ok" if ok else "unreachable",
            }
            if get_settings().instance:  # one of several behind the balancer: which one
                body["instance"] = instance_name()
            router = replicas.current() or await run_in_threadpool(db.read_router)
            if router is not None and router.has_replicas():
                body["replicas"] = router.report()  # down or lagging ones: the primary reads
            await send_body(
                send,
                200 if ok else 503,
                json.dumps(body).encode(),
                extra=[(b"cache-control", b"no-store")],
                head=head,
            )
            return
        if path == "/metrics":
            if method not in ("GET", "HEAD"):
                await send_error(send, 405, "MethodNotAllowed", "use GET /metrics")
                return
            exposition, content_type = await run_in_threadpool(self.metrics.exposition)
            await run_in_threadpool(db.read_router)  # the replicas are watched from here on
            exposition += replicas.metrics_lines(instance_name())
            await send_body(
                send, 200, exposition, content_type, [(b"cache-control", b"no-store")], head
            )
            return
        if method not in _METHODS:  # TRACE, CONNECT, …: no route takes them, whoever asks
            await send_error(
                send,
                405,
                "MethodNotAllowed",
                f"{method} is not allowed; this API answers " + ", ".join(sorted(_METHODS)),
                extra=[(b"allow", ", ".join(sorted(_METHODS)).encode())],
            )
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY:
            await send_error(
                send,
                400,  # 414 is HTTP's word, but OGC clients expect a 400 for a bad parameter
                "InvalidParameterValue",
                f"the query string is longer than {MAX_QUERY} characters; "
                "narrow the request (a bbox, fewer properties) or page through it",
                head=head,
            )
            return
        await self.app(scope, receive, PlainErrorsAsOgc(send, method))

    def _record(self, scope: Scope, state: dict[str, Any], seconds: float) -> None:
        status = state["status"] or 499  # nothing sent: the client went away
        method = scope["method"].upper()
        route = self.route_of(scope["path"])
        label = method if method in _METHODS else "other"
        try:
            self.metrics.requests.labels(label, route, str(status)).inc()
            self.metrics.duration.labels(label, route).observe(seconds)
        except Exception as exc:  # metrics must never break a response
            LOGGER.error("cannot record metrics: %s", exc)
        identity = scope.get(SCOPE_IDENTITY, ANONYMOUS)
        client = scope.get("client")
        self.access_log.write(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": method,
                "path": scope["path"],
                "query": redact_query(scope.get("query_string", b"").decode("latin-1")),
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "bytes": state["bytes"],
                "client": client[0] if client else None,
                "department": identity.label,
                "key_id": identity.key_id,
            }
        )
