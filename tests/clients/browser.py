"""A tiny Chrome DevTools Protocol client for Debian's headless ``chromium``, over a pipe.

``--remote-debugging-pipe`` makes Chromium read commands from file descriptor 3 and write
answers and events to descriptor 4, as JSON messages ended by a NUL byte: no port is opened
and no third-party driver or downloaded browser build is needed (Playwright and Selenium
would bring their own). The client records what a page does — console messages, uncaught
exceptions, every request it sends — so tests can assert on them, and takes screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# Run in every document before its own scripts (DevTools' scripts are not subject to the page's
# Content-Security-Policy): records each violation the policy reports.
CSP_LISTENER = """
window.__sdiCspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__sdiCspViolations.push(
  `${e.violatedDirective}: ${e.blockedURI || 'inline'} at ${e.sourceFile || e.documentURI}` +
  `:${e.lineNumber} ${e.sample || ''}`.trim()));
"""


def find_chromium() -> str | None:
    """The path of a Chromium binary on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class BrowserError(RuntimeError):
    """Chromium answered a command with an error, died, or did not answer in time."""


@dataclass
class PageLog:
    """What a page did: console messages and exceptions, requests sent, failed loads."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions, as text."""
        found = [
            f"console.{m['level']}: {m['text']}" for m in self.console if m["level"] == "error"
        ]
        return found + [f"exception: {e}" for e in self.exceptions]


class Chromium:
    """One headless Chromium with one page, driven over ``--remote-debugging-pipe``.

    Usage::

        with Chromium(width=1920, height=1080) as browser:
            browser.navigate("http://127.0.0.1:5000/dashboard/")
            browser.wait_for("document.body.dataset.state === 'ready'")
            png = browser.screenshot()
            assert browser.log.errors() == []
    """

    def __init__(
        self,
        width: int = 1920,
        height: int = 1080,
        timeout: float = 60,
        accept_language: str | None = None,
    ) -> None:
        binary = find_chromium()
        if binary is None:
            raise FileNotFoundError("no chromium on PATH (Debian package: chromium)")
        self.timeout = timeout
        self.width, self.height = width, height
        self.log = PageLog()
        self._profile = tempfile.TemporaryDirectory(prefix="sdi-chromium-")
        self._ids = iter(range(1, 1 << 30))
        self._answers: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child's ends get numbers above 9, so that moving them to 3 and 4 (below) cannot
        # overwrite one with the other.
        to_child_r, from_child_w = (_high_fd(fd) for fd in (to_child_r, from_child_w))

        # The protocol's descriptors must be 3 and 4 in Chromium: bash moves them there.
        r, w = to_child_r, from_child_w
        redirect = f'exec "$0" "$@" 3<&{r} {r}<&- 4>&{w} {w}>&-'
        args = [
            "/bin/bash",  # dash takes single-digit descriptors only
            "-c",
            redirect,
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile.name}",
            "--no-sandbox",  # root in containers/CI; the page is our own, on 127.0.0.1
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            # Nothing but the page may talk to the network: no updates, sync, field trials.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
            "--metrics-recording-only",
            "--hide-scrollbars",
            "--mute-audio",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._stderr: list[bytes] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call(
                "Target.attachToTarget", {"targetId": target, "flatten": True}
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=True)
            self.call("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_LISTENER}, True)
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
            if accept_language:  # the visitor's languages, as a browser set to them sends
                self.call(
                    "Network.setExtraHTTPHeaders",
                    {"headers": {"Accept-Language": accept_language}},
                    session=True,
                )
        except Exception:
            self.close()
            raise

    # -- protocol ------------------------------------------------------------------------------
    def _drain_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line)
            del self._stderr[:-50]

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    for answers in self._answers.values():
                        answers.put({"error": {"message": "chromium closed the pipe"}})
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._lock:
                answers = self._answers.pop(message["id"], None)
            if answers is not None:
                answers.put(message)
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
            )
            self.log.console.append({"level": params.get("type"), "text": text})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.log.console.append(
                {"level": entry.get("level"), "text": f"{entry.get('text')} {entry.get('url', '')}"}
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.log.exceptions.append(exception.get("description") or details.get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.log.requests.append(params["request"]["url"])
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            self.log.responses[response.get("url", "")] = response.get("status", 0)
        elif method == "Network.loadingFailed":
            self.log.failed.append(f"{params.get('errorText')} ({params.get('type')})")

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send one command and wait for its answer; an error answer raises BrowserError."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        answers: queue.Queue = queue.Queue()
        with self._lock:
            self._answers[message_id] = answers
        try:
            os.write(self._to_child, json.dumps(message).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"{method}: chromium is gone ({exc}); {self.stderr()}") from exc
        try:
            answer = answers.get(timeout=self.timeout)
        except queue.Empty:
            raise BrowserError(f"{method}: no answer in {self.timeout} s") from None
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}; {self.stderr()}")
        return answer.get("result", {})

    def stderr(self) -> str:
        return b"".join(self._stderr[-10:]).decode(errors="replace").strip()

    # -- page ----------------------------------------------------------------------------------
    def navigate(self, url: str) -> None:
        answer = self.call("Page.navigate", {"url": url}, session=True)
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values)."""
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression!r} failed in the page: {text}")
        return answer["result"].get("value")

    def csp_violations(self) -> list[str]:
        """The Content-Security-Policy violations the current document has reported so far
        (``securitypolicyviolation`` events): directive, what was blocked, where."""
        return list(self.evaluate("window.__sdiCspViolations || []") or [])

    def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.2) -> Any:
        """Poll a JavaScript expression until it is truthy; its value, or BrowserError."""
        deadline = time.monotonic() + timeout
        problem = "still false"
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError as exc:  # e.g. no document.body yet while the page loads
                value, problem = None, str(exc)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r}: {problem} after {timeout} s")
            time.sleep(interval)

    def screenshot(self, path: Path | None = None, full_page: bool = False) -> bytes:
        """A PNG of the page's viewport (or of the whole page); also written to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 8000),
                "scale": 1,
            }
        data = base64.b64decode(self.call("Page.captureScreenshot", params, session=True)["data"])
        if path is not None:
            path.write_bytes(data)
        return data

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._process.poll() is None:
            try:
                os.write(
                    self._to_child,
                    json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0",
                )
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
