"""Bounded work per request and per client: a pure ASGI middleware inside the access control.

In order, for every HTTP request that reaches it (:func:`sdi.api.app.build` places it just
inside :class:`sdi.api.auth.AccessControl`, so the client's identity is known):

1. **Rate limits** (``SDI_RATE_LIMIT_ANONYMOUS`` per client address without a key,
   ``SDI_RATE_LIMIT_KEY`` per API key; requests per minute), shared by every server worker
   process and every instance on the database (:class:`SharedRateLimiter`): fixed windows of
   ``WINDOW`` seconds, each allowing a sixth of the minute's budget, counted in the UNLOGGED
   table ``auth.rate_counts``. A process claims a client's requests from it in batches (a
   twentieth of the window's budget), so a read pays a round trip only once per batch; what a
   process claimed and did not use is simply lost, so the limit is never exceeded across
   processes. Above it: ``429`` with ``Retry-After`` (whole seconds until the window ends).
   When the database does not answer within ``CLAIM_TIMEOUT`` the limiter fails open to a
   token bucket per process for ``AWAY_FOR`` seconds. Administrators' keys are not limited.
2. **Process executions at once** (``SDI_PROCESS_CONCURRENCY`` per server worker process):
   ``POST /processes/{id}/execution`` beyond it is a ``429`` with ``Retry-After`` at once,
   before its body is read; the running ones use their own connection pool
   (:func:`sdi.api.processes.process_pool`), so reads and ``/healthz`` never wait behind them.
3. **Request bodies** (``SDI_MAX_BODY_BYTES``, every route): a ``Content-Length`` above it is a
   ``413`` before anything is read; a body without a length (chunked) is read as it arrives
   and answered ``413`` as soon as it passes the limit; a body within it is handed on whole.
4. **Workers replaced** (:class:`Recycler`): a worker process is replaced after
   ``SDI_SERVER_MAX_REQUESTS`` responses (plus a random share of the jitter) or when its
   resident size is above ``SDI_SERVER_MAX_MEMORY_MB``. It first *drains*: for
   ``SDI_SERVER_DRAIN_S`` seconds, longer than the keep-alive timeout, it still serves but
   answers ``Connection: close``, so every keep-alive client moves to another worker at its
   next request and none is cut mid-request (uvicorn's own ``--limit-max-requests`` closes
   idle keep-alive connections at once, which a client that sent a request just then sees as
   a dropped connection). Then it stops gracefully (SIGTERM) and uvicorn's supervisor starts
   a fresh one. Only with two or more workers, one at a time (:func:`take_recycle_slot`: at
   most one every 30 s), so the service never stops whole.

All answers are OGC exception bodies naming the limit and the setting.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import random
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import psycopg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sdi.api.asgi import header, send_error
from sdi.api.auth import ANONYMOUS, SCOPE_IDENTITY
from sdi.settings import Settings, get_settings

LOGGER = logging.getLogger("sdi.api.limits")

MAX_CLIENTS = 50_000  # buckets kept per worker; the least recently used go first
MEMORY_CHECK_EVERY = 20  # responses between two looks at the resident size or the slot
RECYCLE_SPACING = 30.0  # seconds between two workers being replaced


UPLOAD_PATH = "/processes/etl-run/execution"  # deliveries: sdi.api.etl_process

WINDOW = 10  # seconds of a shared rate-limit window (a sixth of the minute's budget each)
CLAIM_TIMEOUT = 0.5  # seconds a claim may take before the limiter falls back to local buckets
AWAY_FOR = 2.0  # seconds the local buckets decide after a failed claim
CLEANUP_EVERY = 60.0  # seconds between two deletions of past windows (by each process)
_CLAIM = """
WITH claim AS (
    INSERT INTO auth.rate_counts AS r (client, window_start, hits) VALUES (%s, %s, %s)
    ON CONFLICT (client, window_start) DO UPDATE SET hits = r.hits + excluded.hits
    RETURNING r.hits
)
SELECT (SELECT hits FROM claim), coalesce(
    (SELECT hits FROM auth.rate_counts WHERE client = %s AND window_start = %s), 0)
"""
_CLEANUP = "DELETE FROM auth.rate_counts WHERE window_start < %s"


class RateLimiter:
    """Token buckets per client: ``per_minute`` requests, bursts of a sixth of it.

    >>> limiter = RateLimiter(60)
    >>> [limiter.wait("a", now=0.0) for _ in range(11)][-1]
    1.0
    """

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, per_minute / 6.0)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """0 if ``client`` may make a request now (and count it), else seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
        return wait


class SharedRateLimiter:
    """Windows of :data:`WINDOW` s counted in ``auth.rate_counts`` by every process, read as
    a sliding window (the previous window's count weighted by the part of it still within
    ``WINDOW`` s, plus the current one's), so a burst across a window's end is limited too.

    ``wait`` answers from this process's claimed quota without a round trip; when it is spent
    it claims a batch more (one statement adding the batch to the window's count and reading
    the previous one: what the estimate leaves no room for is not granted). A client found at
    the limit is answered locally until the estimate has room again. Counters are keyed by
    client and budget, so instances configured with other limits do not share them.

    >>> SharedRateLimiter(60).admit(hits=10, previous=0, batch=1, elapsed=0.5)
    (1, 0.0)
    >>> SharedRateLimiter(60).admit(hits=20, previous=0, batch=1, elapsed=0.5)
    (0, 10.0)
    >>> SharedRateLimiter(60).admit(hits=6, previous=10, batch=1, elapsed=0.5)
    (0, 1.0)
    """

    def __init__(self, per_minute: int, connect: Callable[[], str] | None = None) -> None:
        self.per_minute = per_minute
        self.limit = max(1, round(per_minute * WINDOW / 60))
        self.batch = max(1, self.limit // 20)
        self.local = RateLimiter(per_minute)  # while the database does not answer
        self._url = connect
        # client → (window, requests left of what was claimed, no claim before this time)
        self._quota: OrderedDict[str, tuple[int, int, float]] = OrderedDict()
        self._conn: psycopg.AsyncConnection | None = None
        self._lock: asyncio.Lock | None = None
        self._away_until = 0.0
        self._disabled = False
        self._cleaned = 0.0
        self.claims = 0  # round trips made

    def admit(self, hits: int, previous: int, batch: int, elapsed: float) -> tuple[int, float]:
        """(requests granted of a batch just added, making the window's count ``hits``,
        seconds until there is room again when none is granted); ``elapsed``: the part of
        the current window gone (0..1)."""
        before = previous * (1 - elapsed) + hits - batch
        granted = max(0, min(batch, math.floor(self.limit - before)))
        if granted:
            return granted, 0.0
        if hits >= self.limit:  # room only in the next window, as this one's weight fades
            wait = (1 - elapsed) + (1 - self.limit / hits)
        else:  # room once enough of the previous window has slid out
            wait = (1 - (self.limit - hits) / previous) - elapsed if previous else 0.0
        return 0, max(1.0, wait * WINDOW)

    async def wait(self, client: str, now: float | None = None) -> float:
        """0 if ``client`` may make a request now (and count it), else seconds to wait."""
        now = time.time() if now is None else now
        window = int(now // WINDOW)
        state = self._quota.get(client)
        if state is not None and state[0] == window and state[1] > 0:
            self._quota[client] = (window, state[1] - 1, 0.0)
            return 0.0
        if state is not None and now < state[2]:
            return state[2] - now
        if self._disabled or time.monotonic() < self._away_until:
            return self.local.wait(client)
        try:
            hits, previous = await asyncio.wait_for(self._claim(client, window), CLAIM_TIMEOUT)
        except Exception as exc:  # any failure (away, slow, refused): fail open, locally
            self._failed(exc)
            return self.local.wait(client)
        granted, wait = self.admit(hits, previous, self.batch, now / WINDOW - window)
        state = self._quota.pop(client, None)
        left = granted + (state[1] if state is not None and state[0] == window else 0)
        while len(self._quota) >= MAX_CLIENTS:
            self._quota.popitem(last=False)
        if left > 0:
            self._quota[client] = (window, left - 1, 0.0)
            return 0.0
        self._quota[client] = (window, 0, now + wait)
        return wait

    async def _claim(self, client: str, window: int) -> tuple[int, int]:
        """Add a batch to the window's count: (the count now, the previous window's)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.closed:
                url = self._url() if self._url else _api_url()
                self._conn = await psycopg.AsyncConnection.connect(
                    url,
                    autocommit=True,
                    connect_timeout=1,
                    options=f"-c statement_timeout={int(CLAIM_TIMEOUT * 1000)}",
                    application_name="sdi-rate-limits",
                )
            key = f"{client}/{self.per_minute}"
            cursor = await self._conn.execute(_CLAIM, (key, window, self.batch, key, window - 1))
            row = await cursor.fetchone()
            self.claims += 1
            if time.monotonic() - self._cleaned > CLEANUP_EVERY:
                self._cleaned = time.monotonic()
                await self._conn.execute(_CLEANUP, (window - 1,))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _failed(self, exc: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            # a cancelled claim leaves the connection busy: drop it (a new one next time)
            conn.pgconn.finish()
        if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.InsufficientPrivilege)):
            self._disabled = True
            LOGGER.warning(
                "rate limits are per server process: auth.rate_counts is missing or not "
                "granted (`sdi db grants` creates it): %s",
                " ".join(str(exc).split())[:200],
            )
            return
        if time.monotonic() >= self._away_until:
            LOGGER.warning(
                "rate limits are per server process for %.0f s: the database did not answer (%s)",
                AWAY_FOR,
                type(exc).__name__,
            )
        self._away_until = time.monotonic() + AWAY_FOR


def _api_url() -> str:
    from sdi.api.db import api_url

    return api_url()


class Limits:
    """The ASGI middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        settings = settings or get_settings()
        self.settings = settings
        self.anonymous = (
            SharedRateLimiter(settings.rate_limit_anonymous)
            if settings.rate_limit_anonymous
            else None
        )
        self.keyed = SharedRateLimiter(settings.rate_limit_key) if settings.rate_limit_key else None
        self.processes_running = 0
        self.recycler = Recycler(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s = self.settings
        wait = await self._rate_wait(scope)
        if wait > 0:
            await send_error(
                send,
                429,
                "TooManyRequests",
                "too many requests from this client: the limit is "
                f"{self._limit_of(scope)} requests a minute; retry after the time in Retry-After",
                extra=[(b"retry-after", str(max(1, math.ceil(wait))).encode())],
            )
            return
        length = header(scope, b"content-length")
        body_limit = self._body_limit(scope)
        if length is not None and (not length.isdigit() or int(length) > body_limit):
            await _too_large(send, body_limit)
            return
        execution = scope["method"] == "POST" and scope["path"].startswith("/processes/")
        if execution:
            if self.processes_running >= s.process_concurrency:
                await send_error(
                    send,
                    429,
                    "TooManyRequests",
                    f"all {s.process_concurrency} process executions of this server process are "
                    "busy (SDI_PROCESS_CONCURRENCY); retry after the time in Retry-After, or "
                    "execute asynchronously (Prefer: respond-async) with an API key",
                    extra=[(b"retry-after", b"2")],
                )
                return
            self.processes_running += 1
        try:
            await self._bounded(scope, receive, self.recycler.wrap(send))
        finally:
            if execution:
                self.processes_running -= 1
            self.recycler.after_response()

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a body whole (it is small: the limit) and hand it on, or answer 413."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self._body_limit(scope)
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client has gone: nobody to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    def _body_limit(self, scope: Scope) -> int:
        """SDI_MAX_BODY_BYTES, except for a department's delivery to the etl-run process: its
        upload limit (SDI_UPLOAD_MAX_MB), base64-encoded in a JSON body."""
        if scope["path"].rstrip("/") == UPLOAD_PATH:
            return self.settings.upload_max_mb * 1024 * 1024 * 4 // 3 + 65536
        return self.settings.max_body_bytes

    async def _rate_wait(self, scope: Scope) -> float:
        identity = scope.get(SCOPE_IDENTITY, ANONYMOUS)
        if identity.key_id is None:
            if self.anonymous is None:
                return 0.0
            client = scope.get("client") or ("unknown", 0)
            return await self.anonymous.wait(f"ip:{client[0]}")
        if self.keyed is None or identity.department == "*":
            return 0.0
        return await self.keyed.wait(f"key:{identity.key_id}")

    def _limit_of(self, scope: Scope) -> int:
        identity = scope.get(SCOPE_IDENTITY, ANONYMOUS)
        s = self.settings
        return s.rate_limit_anonymous if identity.key_id is None else s.rate_limit_key


async def _too_large(send: Send, limit: int) -> None:
    await send_error(
        send,
        413,
        "PayloadTooLarge",
        f"the request body is larger than {limit:,} bytes, the limit of this service "
        "(SDI_MAX_BODY_BYTES)",
    )


class Recycler:
    """When this worker process is replaced, and its drain (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        several = settings.workers >= 2  # with one, uvicorn would not start another
        jitter = settings.server_max_requests_jitter
        self.max_responses = (
            settings.server_max_requests + random.randint(0, max(jitter, 0))
            if several and settings.server_max_requests
            else 0
        )
        self.ceiling = settings.server_max_memory_mb if several else 0
        self.responses = 0
        self.draining = False

    def wrap(self, send: Send) -> Send:
        """``send`` that adds ``Connection: close`` to answers while the worker drains."""

        async def sending(message: Message) -> None:
            if self.draining and message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        return sending

    def after_response(self) -> None:
        self.responses += 1
        if self.draining or self.responses % MEMORY_CHECK_EVERY:
            return
        why = None
        if self.max_responses and self.responses >= self.max_responses:
            why = f"served {self.responses} requests (SDI_SERVER_MAX_REQUESTS)"
        elif self.ceiling and (resident := resident_mb()) > self.ceiling:
            why = f"uses {resident:.0f} MB, above SDI_SERVER_MAX_MEMORY_MB={self.ceiling}"
        if why is None or not take_recycle_slot(self.settings.state_dir / "server"):
            return
        self.draining = True
        drain = self.settings.server_drain_s
        LOGGER.warning("worker %d %s: replacing it after a %.0f s drain", os.getpid(), why, drain)
        asyncio.get_running_loop().call_later(drain, os.kill, os.getpid(), signal.SIGTERM)


def take_recycle_slot(run_dir: Path, spacing: float = RECYCLE_SPACING) -> bool:
    """Whether this worker may stop for a fresh one now: not if another did in the last
    ``spacing`` seconds (it may still be draining, its replacement starting), so workers due
    together are replaced one at a time and the service never has none."""
    stamp = run_dir / "recycled_at"
    try:
        with open(stamp.with_suffix(".lock"), "a", encoding="ascii") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                last = float(stamp.read_text(encoding="ascii"))
            except (OSError, ValueError):
                last = 0.0
            now = time.time()
            if now - last < spacing:
                return False
            stamp.write_text(f"{now}", encoding="ascii")
            return True
    except OSError:
        return False


def resident_mb() -> float:
    """This process's resident memory in MB (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576
