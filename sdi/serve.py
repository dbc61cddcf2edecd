"""Run the OGC API: pygeoapi (via :mod:`sdi.api.app`) under uvicorn with worker processes.

``start`` runs the server in the background (pid and log in the state directory) and returns
when it answers; ``restart`` is how a new ``pygeoapi-config.yml`` takes effect.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

from sdi.api.openapi import conform, self_contained
from sdi.db import roles
from sdi.errors import SdiError
from sdi.settings import Settings


class ServerError(SdiError):
    exit_code = 7


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.state_dir / "server"
        self.pid_file = self.run_dir / "server.pid"
        self.log_file = self.run_dir / "server.log"
        self.openapi_file = self.run_dir / "openapi.yml"

    # -- preparation -------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PYGEOAPI_CONFIG=str(self.settings.pygeoapi_config),
            PYGEOAPI_OPENAPI=str(self.openapi_file),
            SDI_PUBLIC_URL=self.settings.server_url,
            # The workers connect as the API role, granted here first (sdi.db.roles).
            SDI_API_DATABASE_URL=roles.prepare(self.settings),
        )
        return env

    def write_openapi(self) -> None:
        """The OpenAPI document follows the config; regenerate it before every start."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; "
                "from pygeoapi.openapi import generate_openapi_document as g; "
                "sys.stdout.write(g(Path(sys.argv[1]), 'yaml'))",
                str(self.settings.pygeoapi_config),
            ],
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(
                "cannot build the OpenAPI document from pygeoapi-config.yml:\n"
                + result.stderr.strip().splitlines()[-1]
                if result.stderr
                else "no output"
            )
        with self.settings.pygeoapi_config.open(encoding="utf-8") as config:
            resources = {"resources": yaml.safe_load(config).get("resources") or {}}
        document = conform(self_contained(yaml.safe_load(result.stdout)), resources)
        self.openapi_file.write_text(
            yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )

    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "sdi.api.app:app",
            "--host",
            s.host,
            "--port",
            str(s.port),
            "--workers",
            str(s.workers),
            "--log-level",
            "warning",
            "--no-server-header",
            "--timeout-graceful-shutdown",
            "10",
            *self.recycling(),
        ]

    def recycling(self) -> list[str]:
        """Workers replaced after a number of requests (with jitter, so not all at once); only
        with two or more, since uvicorn's supervisor restarts them (with one, the server would
        stop). The memory ceiling is checked by the workers themselves (sdi.api.limits)."""
        s = self.settings
        if s.workers < 2 or not s.server_max_requests:
            return []
        return [
            "--limit-max-requests",
            str(s.server_max_requests),
            "--limit-max-requests-jitter",
            str(s.server_max_requests_jitter),
        ]

    # -- lifecycle ---------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.settings.host, self.settings.port)) == 0

    def _wait_ready(self, process: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.settings.host}:{self.settings.port}/?f=json"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
        self.stop_server(quiet=True)
        raise ServerError(f"the OGC API did not come up on {url}; log {self.log_file}:\n{tail}")

    def start(self) -> None:
        self.start_server()
        if self.settings.serve_worker:
            Worker(self.settings).start()

    def start_server(self) -> None:
        if self.pid():
            print(f"OGC API already running (pid {self.pid()}): {self.settings.server_url}/")
            return
        if self._port_taken():
            raise ServerError(
                f"port {self.settings.port} on {self.settings.host} is taken by another program; "
                "stop it or set SDI_PORT"
            )
        self.write_openapi()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.settings.home,
            )
        self.pid_file.write_text(str(process.pid))
        self._wait_ready(process)
        print(
            f"OGC API running (pid {process.pid}, log {self.log_file}): {self.settings.server_url}/"
        )

    def stop(self, quiet: bool = False) -> None:
        Worker(self.settings).stop(quiet=quiet)
        self.stop_server(quiet=quiet)

    def stop_server(self, quiet: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            if not quiet:
                print("OGC API is not running")
            self.pid_file.unlink(missing_ok=True)
            return
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        if not quiet:
            print(f"OGC API stopped (pid {pid})")

    def restart(self) -> None:
        self.stop(quiet=True)
        self.start()

    def status(self) -> str:
        pid = self.pid()
        worker = Worker(self.settings).pid()
        jobs = f"; worker pid {worker}" if worker else "; no worker (async jobs wait)"
        if pid:
            return f"running (pid {pid}) at {self.settings.server_url}/{jobs}"
        return "not running" + (jobs if worker else "")

    def run_foreground(self) -> None:
        self.write_openapi()
        os.execve(sys.executable, self.command(), self.environment())


class Worker:
    """One ``sdi worker`` beside the server (``SDI_SERVE_WORKER``), so a fresh ``./dev up``
    runs asynchronous jobs; more workers, on any machine, are started with ``sdi worker``.

    Its log and pid file are private (0600, in a 0700 directory): the log names jobs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.state_dir / "server"
        self.pid_file = self.run_dir / "worker.pid"
        self.log_file = self.run_dir / "worker.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def start(self) -> None:
        if self.pid():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        descriptor = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.log_file, 0o600)
        with os.fdopen(descriptor, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sdi", "worker"],
                env=dict(os.environ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.settings.home,
            )
        self.pid_file.write_text(str(process.pid))
        os.chmod(self.pid_file, 0o600)
        print(f"job worker running (pid {process.pid}, log {self.log_file})")

    def stop(self, quiet: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.killpg(pid, signal.SIGTERM)  # running jobs get the worker's grace period to finish
        for _ in range(250):
            if _gone(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        if not quiet:
            print(f"job worker stopped (pid {pid})")


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (reaped here when it is a child of this process)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
