"""Run the OGC API: pygeoapi (via :mod:`sdi.api.app`) under uvicorn with worker processes.

``start`` runs the server in the background (pid and log in the state directory) and returns
when it answers; ``restart`` is how a new ``pygeoapi-config.yml`` takes effect.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from sdi.api.openapi import conform, self_contained
from sdi.db import roles
from sdi.errors import SdiError
from sdi.settings import Settings


def live_pid(pid_file: Path) -> int | None:
    """The process id in ``pid_file`` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


class ServerError(SdiError):
    exit_code = 7


class Server:
    """``sdi serve``: one uvicorn on SDI_PORT, or (``SDI_INSTANCES`` / ``--instances`` N > 1)
    N of them on the following ports behind an HAProxy balancer on SDI_PORT."""

    def __init__(self, settings: Settings, instance: int | None = None) -> None:
        self.settings = settings
        self.instance = instance
        self.run_dir = settings.state_dir / "server"
        suffix = "" if instance is None else f"-{instance}"
        self.pid_file = self.run_dir / f"server{suffix}.pid"
        self.log_file = self.run_dir / f"server{suffix}.log"
        self.openapi_file = self.run_dir / "openapi.yml"

    @property
    def port(self) -> int:
        """Instance k of N listens on SDI_PORT + k; a lone server on SDI_PORT itself."""
        return self.settings.port + (self.instance or 0)

    @property
    def name(self) -> str:
        return f"i{self.instance}" if self.instance is not None else f"{self.settings.port}"

    def instances(self) -> list[Server]:
        """The instances this server runs: itself alone, or N behind the balancer."""
        if self.instance is not None or self.settings.instances <= 1:
            return [self]
        return [Server(self.settings, k) for k in range(1, self.settings.instances + 1)]

    def running_instances(self) -> list[Server]:
        """The instances whose pid files are here, whatever SDI_INSTANCES says now."""
        found = [Server(self.settings)] if self.pid_file.exists() else []
        for path in sorted(self.run_dir.glob("server-*.pid")):
            number = path.stem.removeprefix("server-")
            if number.isdigit():
                found.append(Server(self.settings, int(number)))
        return found

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
        if self.instance is not None:
            env["SDI_INSTANCE"] = self.name  # labels its metrics and /healthz
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
            str(self.port),
            "--workers",
            str(s.workers),
            "--log-level",
            "warning",
            "--no-server-header",
            "--timeout-graceful-shutdown",
            "10",
        ]

    # -- lifecycle ---------------------------------------------------------------------
    def pid(self) -> int | None:
        return live_pid(self.pid_file)

    def _port_taken(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.settings.host, self.port)) == 0

    def _wait_ready(self, process: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.settings.host}:{self.port}/?f=json"
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
        instances = self.instances()
        if len(instances) == 1:
            self.start_server()
        else:
            self.write_openapi()
            try:
                for instance in instances:
                    instance.start_server(openapi=False)
                Balancer(self.settings, instances).start()
            except BaseException:
                self.stop_servers()
                raise
        if self.settings.serve_worker:
            Worker(self.settings).start()

    def start_server(self, openapi: bool = True) -> None:
        if self.pid():
            print(f"OGC API already running (pid {self.pid()}): {self.url}/")
            return
        if self._port_taken():
            raise ServerError(
                f"port {self.port} on {self.settings.host} is taken by another program; "
                "stop it or set SDI_PORT"
            )
        if openapi:
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
        print(f"OGC API running (pid {process.pid}, log {self.log_file}): {self.url}/")

    @property
    def url(self) -> str:
        """Where this process answers: the public URL, or an instance's own address."""
        if self.instance is None:
            return self.settings.server_url
        return f"http://{self.settings.host}:{self.port} (instance {self.name})"

    def stop(self, quiet: bool = False) -> None:
        Worker(self.settings).stop(quiet=quiet)
        self.stop_servers(quiet=quiet)

    def stop_servers(self, quiet: bool = False) -> None:
        """The balancer first (no new requests), then every instance found running."""
        Balancer(self.settings, []).stop(quiet=quiet)
        instances = self.running_instances() or [self]
        for instance in instances:
            instance.stop_server(quiet=quiet)

    def stop_server(self, quiet: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            if not quiet:
                print("OGC API is not running")
            self.pid_file.unlink(missing_ok=True)
            return
        stop_group(pid, self.pid_file, grace_s=10)
        if not quiet:
            print(f"OGC API stopped (pid {pid})")

    def restart(self) -> None:
        self.stop(quiet=True)
        self.start()

    def status(self) -> str:
        worker = Worker(self.settings).pid()
        jobs = f"; worker pid {worker}" if worker else "; no worker (async jobs wait)"
        running = [(i, i.pid()) for i in self.running_instances()]
        running = [(i, pid) for i, pid in running if pid]
        balancer = Balancer(self.settings, []).pid()
        if balancer and running:
            listed = ", ".join(f"{i.name} pid {pid} port {i.port}" for i, pid in running)
            return (
                f"running at {self.settings.server_url}/ (HAProxy pid {balancer}; "
                f"instances {listed}){jobs}"
            )
        if running:
            return f"running (pid {running[0][1]}) at {running[0][0].url}/{jobs}"
        return "not running" + (jobs if worker else "")

    def run_foreground(self) -> None:
        if self.settings.instances > 1:
            raise ServerError("foreground runs one instance; use `sdi serve start --instances N`")
        self.write_openapi()
        os.execve(sys.executable, self.command(), self.environment())


class Balancer:
    """HAProxy in front of the instances: ``<state>/server/haproxy.cfg``, started and stopped
    with them (README, "Past one machine", says why HAProxy).

    Requests are spread round robin over the instances that pass an active check of
    ``/healthz`` every second; a GET, HEAD or OPTIONS whose instance refuses the connection,
    dies before answering or answers 502/503/504 is sent again to another instance
    (``retry-on`` + ``option redispatch``). Other methods are retried only when the request
    could not be sent at all, so a write is never applied twice by the balancer."""

    def __init__(self, settings: Settings, instances: list[Server]) -> None:
        self.settings = settings
        self.instances = instances
        self.run_dir = settings.state_dir / "server"
        self.config_file = self.run_dir / "haproxy.cfg"
        self.pid_file = self.run_dir / "haproxy.pid"
        self.log_file = self.run_dir / "haproxy.log"

    def config(self) -> str:
        host = self.settings.host
        servers = "\n".join(f"    server {i.name} {host}:{i.port} check" for i in self.instances)
        return HAPROXY_CONFIG.format(
            bind=f"{host}:{self.settings.port}", servers=servers, header=HAPROXY_HEADER
        )

    def write(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config(), encoding="utf-8")
        return self.config_file

    def pid(self) -> int | None:
        return live_pid(self.pid_file)

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise ServerError(
                "HAProxy is not installed (several instances need it): run ./dev setup, or "
                "apt-get install haproxy"
            )
        self.write()
        check = subprocess.run(
            [binary, "-c", "-q", "-f", str(self.config_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ServerError(f"HAProxy refuses {self.config_file}:\n{check.stderr.strip()}")
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + 15
        url = f"{self.settings.server_url}/healthz"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except urllib.error.HTTPError:
                break  # it answers (an instance's 503: the database away)
            except OSError:
                time.sleep(0.2)
        if process.poll() is not None:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise ServerError(f"HAProxy stopped at once; {self.log_file}:\n{tail}")
        print(
            f"HAProxy (pid {process.pid}, {self.config_file}) at {self.settings.server_url}/ "
            f"over {len(self.instances)} instances"
        )

    def stop(self, quiet: bool = False) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        stop_group(pid, self.pid_file, grace_s=10)
        if not quiet:
            print(f"HAProxy stopped (pid {pid})")


HAPROXY_HEADER = "# Written by `sdi serve start` (sdi/serve.py, Balancer): edits here are lost."
HAPROXY_CONFIG = """\
{header}
global
    maxconn 4096
    # one process, no daemon: `sdi serve stop` ends it by its pid

defaults
    mode http
    timeout connect 2s
    timeout client 65s
    timeout server 65s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # a busy instance's slow /healthz is no dead one (a dead one refuses at once)
    timeout check 5s
    # An instance that refuses the connection, dies mid-request or answers 502/503/504 (its
    # database away): the request goes to another instance, up to 3 times.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 502 503 504

frontend api
    bind {bind}
    # The client's address for the instances' rate limits and access log (uvicorn trusts
    # X-Forwarded-For from 127.0.0.1, where this balancer connects from).
    option forwardfor
    default_backend instances

backend instances
    balance roundrobin
    # Only idempotent methods are sent twice; a write is retried only when it could not be
    # sent at all (conn-failure), so it is never applied twice by the balancer.
    http-request disable-l7-retry if !METH_GET !METH_OPTIONS
    # An instance is up when it answers /healthz (200, or 503 when the database is away: it
    # then answers that itself, with Retry-After); down after 2 failed checks, 1 s apart.
    option httpchk GET /healthz
    http-check expect rstatus ^(200|503)$
    default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 2
{servers}
"""


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
        return live_pid(self.pid_file)

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
        # running jobs get the worker's grace period to finish
        stop_group(pid, self.pid_file, grace_s=25)
        if not quiet:
            print(f"job worker stopped (pid {pid})")


def stop_group(pid: int, pid_file: Path, grace_s: float) -> None:
    """SIGTERM to the process group ``pid`` leads, SIGKILL if it is not gone within
    ``grace_s`` seconds; its pid file removed."""
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)


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
