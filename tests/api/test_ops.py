"""Operations over HTTP: health, Prometheus metrics, the access log, and errors as OGC bodies."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sdi.keys import create_key
from tests.conftest import free_port

INTERNAL = "permits_register"


def assert_ogc_error(response: httpx.Response, status: int | None = None) -> dict:
    if status is not None:
        assert response.status_code == status, (response.status_code, response.text[:300])
    assert 400 <= response.status_code < 600
    body = response.json()
    assert isinstance(body["code"], str) and body["code"]
    assert isinstance(body["description"], str) and body["description"]
    for internal in ("Traceback", 'File "', "psycopg", "site-packages", "sdi/api"):
        assert internal not in response.text
    return body


# -- health ------------------------------------------------------------------------------------
def test_healthz_says_ok_when_the_warehouse_answers(api) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert response.headers["cache-control"] == "no-store"


def test_healthz_is_cheap(api) -> None:
    started = time.perf_counter()
    for _ in range(50):
        assert api.get("/healthz").status_code == 200
    assert (time.perf_counter() - started) / 50 < 0.05


class Outage:
    """A TCP relay between a server and the warehouse that can be cut and restored.

    The server's database connections go through it; ``cut()`` closes the relay and every
    connection through it, as a network failure or a database restart would.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        with self._lock:
            self._listener = socket.create_server(("127.0.0.1", self.port))
            threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
                self._listener.close()
                self._listener = None
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile: this one dies too
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture()
def server_behind_outage(
    server, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Outage]]:
    """A second server (one worker) whose warehouse connections go through an ``Outage``."""
    from sdi.serve import Server
    from sdi.settings import get_settings

    url = urlsplit(settings.database_url)
    outage = Outage((url.hostname, url.port or 5432))
    relayed = url._replace(netloc=url.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{outage.port}")
    monkeypatch.setenv("SDI_DATABASE_URL", urlunsplit(relayed))
    monkeypatch.setenv("SDI_STATE_DIR", str(tmp_path / "state"))
    port = free_port()
    monkeypatch.setenv("SDI_PORT", str(port))
    monkeypatch.setenv("SDI_PUBLIC_URL", f"http://127.0.0.1:{port}")  # not another test's
    monkeypatch.setenv("SDI_WORKERS", "1")
    get_settings.cache_clear()
    process = Server(get_settings())
    process.start()
    try:
        yield f"http://127.0.0.1:{port}", outage
    finally:
        process.stop(quiet=True)
        outage.cut()
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.mark.slow
def test_without_the_warehouse_health_is_503_and_errors_stay_ogc_bodies(
    server_behind_outage: tuple[str, Outage], db
) -> None:
    base, outage = server_behind_outage
    _, key = create_key(db, "construction", "health test")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
        assert client.get("/collections/lamps/items", params={"limit": 1}).status_code == 200
        outage.cut()
        time.sleep(1.1)  # past the cached answer
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {"status": "unavailable", "database": "unreachable"}
        # A key cannot be checked: a 503, not a 401 and not a 500.
        assert_ogc_error(client.get("/collections", headers={"X-API-Key": key}), 503)
        # The landing page needs no database; features do: an OGC 5xx without internals.
        assert client.get("/", params={"f": "json"}).status_code == 200
        assert_ogc_error(client.get("/collections/lamps/items", params={"limit": 1}))
        outage.restore()
        deadline = time.monotonic() + 30
        while client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
        assert client.get("/collections", headers={"X-API-Key": key}).status_code == 200


# -- metrics -----------------------------------------------------------------------------------
def _requests_total(text: str, route: str, status: str, method: str = "GET") -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "sdi_http_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name == "sdi_http_requests_total"
                and s.labels == {"method": method, "route": route, "status": status}
            )
    return 0.0


def test_metrics_count_requests_of_every_worker_by_route_template(server: str) -> None:
    before = httpx.get(f"{server}/metrics").text
    n = 24
    for _ in range(n):  # one connection each: the kernel spreads them over the workers
        assert httpx.get(f"{server}/conformance").status_code == 200
        assert (
            httpx.get(f"{server}/collections/lamps/items", params={"limit": 1}).status_code == 200
        )
    response = httpx.get(f"{server}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert (
        _requests_total(after, "/conformance", "200")
        - _requests_total(before, "/conformance", "200")
        == n
    )
    route = "/collections/{collection_id}/items"
    assert _requests_total(after, route, "200") - _requests_total(before, route, "200") >= n
    families = {f.name: f for f in text_string_to_metric_families(after)}
    assert families["sdi_http_request_duration_seconds"].type == "histogram"
    assert any(
        s.labels.get("route") == route and s.name.endswith("_bucket")
        for s in families["sdi_http_request_duration_seconds"].samples
    )
    assert families["sdi_http_requests_in_flight"].samples[0].value >= 1  # this request
    for family in families.values():
        for sample in family.samples:
            assert "lamps" not in json.dumps(sample.labels)


# -- access log --------------------------------------------------------------------------------
def _log_lines(settings, marker: str, expected: int = 1, wait: float = 5.0) -> list[dict]:
    path = settings.state_dir / "server" / "access.log"
    deadline = time.monotonic() + wait
    while True:
        lines = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if marker in line
        ]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_access_log_is_json_lines_with_department_and_never_a_key(api, settings, db) -> None:
    record, key = create_key(db, "construction", "access log test")
    marker = f"marker{time.monotonic_ns()}"
    assert (
        api.get(
            f"/collections/{INTERNAL}/items",
            params={"limit": 2, "commune_code": marker},
            headers={"X-API-Key": key},
        ).status_code
        == 200
    )
    assert (
        api.get("/collections/lamps/items", params={"limit": 1, "road_name": marker}).status_code
        == 200
    )
    api.get("/collections", params={"api_key": key, "note": marker})  # refused (400)
    lines = _log_lines(settings, marker, expected=3)
    assert len(lines) == 3
    keyed, anonymous, refused = lines
    assert keyed["department"] == "construction" and keyed["key_id"] == record.key_id
    assert keyed["method"] == "GET" and keyed["path"] == f"/collections/{INTERNAL}/items"
    assert keyed["status"] == 200 and keyed["bytes"] > 0 and keyed["duration_ms"] >= 0
    assert keyed["client"] == "127.0.0.1" and keyed["route"] == "/collections/{collection_id}/items"
    assert f"commune_code={marker}" in keyed["query"]
    assert keyed["time"].endswith("+00:00")
    assert anonymous["department"] == "anonymous" and anonymous["key_id"] is None
    assert refused["status"] == 400 and "api_key=REDACTED" in refused["query"]
    logs = settings.state_dir / "server"
    for name in ("access.log", "server.log"):
        assert key not in (logs / name).read_text(encoding="utf-8", errors="replace")
        assert key.split("_", 2)[2] not in (logs / name).read_text(errors="replace")


# -- errors are OGC exception bodies -----------------------------------------------------------
BAD_ITEMS_REQUESTS = [
    ("permits", {"limit": "-1"}),
    ("permits", {"limit": "0"}),
    ("permits", {"limit": "abc"}),
    ("permits", {"limit": ""}),
    ("permits", {"offset": "x"}),
    ("permits", {"offset": "-5"}),
    ("permits", {"offset": "99999999999999999999"}),
    ("permits", {"bbox": "1,2,3"}),
    ("permits", {"bbox": "a,b,c,d"}),
    ("permits", {"bbox": "1,2,3,4,5,6,7"}),
    ("permits", {"crs": "EPSG:9999"}),
    ("permits", {"crs": "http://www.opengis.net/def/crs/EPSG/0/9999"}),
    ("permits", {"bbox": "1,2,3,4", "bbox-crs": "EPSG:9999"}),
    ("permits", {"bbox": "1,2,3,4", "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/1"}),
    ("permits", {"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/1"}),  # not offered
    ("permits", {"limit": "10001"}),  # above the advertised maximum
    ("permits", {"skipGeometry": "null"}),
    ("permits", {"f": ""}),
    ("permits", {"bbox": "1,2,3,4,5"}),
    ("permits", {"datetime": "2025-02-29T00:00:00Z"}),  # no such day
    ("permits", {"floors": "two"}),  # an integer property
    ("permits", {"floors": "99999999999"}),  # beyond the column's type
    ("catalogue", {"f": "csv"}),  # records have no CSV
    ("permits", {"datetime": "garbage"}),
    ("permits", {"datetime": "2020-13-45"}),
    ("permits", {"datetime": "garbage/.."}),
    ("permits", {"datetime": "2020"}),
    ("permits", {"sortby": "unknown"}),
    ("permits", {"sortby": ""}),
    ("permits", {"properties": "unknown"}),
    ("permits", {"f": "xyz"}),
    ("permits", {"filter": "foo"}),
    ("parcels", {"limit": "-1"}),
    ("parcels", {"sortby": "-owner_name"}),
    ("parcels", {"properties": "owner_name"}),
    ("parcels", {"bbox": "a,b,c,d"}),
]


@pytest.mark.parametrize(("collection", "params"), BAD_ITEMS_REQUESTS)
def test_a_bad_parameter_is_a_4xx_with_an_ogc_body(api, collection: str, params: dict) -> None:
    response = api.get(f"/collections/{collection}/items", params=params)
    assert 400 <= response.status_code < 500, (params, response.status_code, response.text[:300])
    assert_ogc_error(response)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/collections/no_such_layer/items", {}, 404),
        ("/collections/no_such_layer", {}, 404),
        ("/collections/parcels/items/not-a-number", {}, 404),
        ("/collections/parcels/items/999999999", {}, 404),
        ("/collections/parcels/items/99999999999999999999999", {}, 404),
        ("/collections/permits/items/1", {"crs": "EPSG:9999"}, 400),
        ("/collections/permits/items", {"q": "x" * 20_000}, 400),
        ("/collections/permits/items", {"f": "json", "bbox": ",".join(["1"] * 4000)}, 400),
        ("/no/such/endpoint", {}, 404),
        ("/collections/permits/nothing-here", {}, 404),
    ],
)
def test_missing_things_and_long_queries_are_ogc_errors(
    api, path: str, params: dict, status: int
) -> None:
    assert_ogc_error(api.get(path, params=params), status)


def test_a_method_a_route_does_not_take_is_a_405_ogc_body(api, db) -> None:
    _, admin = create_key(db, "*", "ops test admin")
    response = api.post("/conformance", headers={"X-API-Key": admin, "Content-Type": "text/plain"})
    body = assert_ogc_error(response, 405)
    assert "GET" in body["description"] and "allow" in response.headers


# -- issue 13: redirects, logs ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["/dashboard", "/dashboard?x=1"])
def test_redirects_are_relative_whatever_the_host_header(api, path: str) -> None:
    response = api.get(path, headers={"Host": "evil.example"}, follow_redirects=False)
    assert 300 <= response.status_code < 400, response.status_code
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "evil" not in location


def test_a_client_error_is_one_warning_line_truncated(api, settings) -> None:
    marker = "fuzzmarker" + "x" * 3000
    for path, params in [
        ("/collections/lamps/items", {"filter": marker}),
        ("/collections/lamps/items", {"datetime": marker}),
        ("/collections/lamps/items", {"bbox-crs": marker}),
        (f"/collections/lamps/items/{marker}", {}),
        ("/collections/lamps/items", {"sortby": marker}),
    ]:
        assert api.get(path, params=params).status_code < 500
    log = settings.state_dir / "server" / "api.log"
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline and not lines:
        lines = [line for line in log.read_text().splitlines() if "fuzzmarker" in line]
        time.sleep(0.1)
    assert lines, "the client error was not logged"
    for line in lines:
        assert len(line) < 1200 and "Traceback" not in line
        assert " ERROR " not in line
    assert oct(log.stat().st_mode & 0o777) == "0o640"


def test_ordinary_reads_write_nothing_to_the_log(api, settings) -> None:
    """pygeoapi 0.24 warns of every items request without ``offset`` and of every empty
    tile (a 204): neither is an error, and one line per read would rotate the useful ones out."""
    log = settings.state_dir / "server" / "api.log"
    before = log.stat().st_size if log.exists() else 0
    assert api.get("/collections/lamps/items", params={"limit": 2}).status_code == 200
    # a tile of the parcels far from the cities: no feature, 204
    from sdi.api.tiles import tile_range
    from sdi.layers import load_layers

    parcels = next(layer for layer in load_layers() if layer.id == "parcels")
    z = parcels.tiles["min_zoom"]
    x, _, y, _ = tile_range((106.4, 20.6, 108.2, 21.7), z)
    empty = api.get(f"/collections/parcels/tiles/WebMercatorQuad/{z}/{y}/{x}", params={"f": "mvt"})
    assert empty.status_code == 204
    # then a client error, which is logged: the lines before it are the reads'
    assert api.get("/collections/lamps/items", params={"filter": "x ="}).status_code == 400
    marker = "Bad CQL text"
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline and marker not in text:
        with log.open("rb") as f:
            f.seek(before)
            text = f.read().decode(errors="replace")
        time.sleep(0.1)
    assert marker in text  # the log is written, in order
    written = text[: text.index(marker)]
    assert "int() argument" not in written
    assert "NoContent" not in written
