"""OGC API throughput: our server vs tipg vs stock pygeoapi vs the same SQL, on 1 M parcels.

One run, one table (``land.parcels_current`` of the bench database ``sdi_bench_api``, loaded
by our ETL from the 1 M-parcel sample delivery), each server started with 2 workers on
127.0.0.1, loaded in turn by ``wrk`` (1 thread, 4 connections, fixed duration) from another
process, then stopped:

* ours: ``sdi serve`` (pygeoapi 0.24 + sdi.api.provider), as the project serves it;
* tipg (``bench/results/venv-tipg``: ``pip install tipg 'uvicorn[standard]'``);
* stock pygeoapi 0.24 with its PostgreSQL provider (``bench/results/venv-pygeoapi``:
  ``pip install pygeoapi==0.24.0 psycopg2-binary 'uvicorn[standard]'``), same view, same
  published properties;
* the query itself in SQL (psycopg, 4 threads): the GeoJSON of 100 features of the bbox.

Scenarios: a dense bbox with ``limit=100`` (16 boxes of 0.002° in the densest cells of the
data, 50–300 parcels each: a street block of the densest city), a bbox with ``limit=100`` (16
bboxes of a few thousand parcels, in turn), the first
``limit=1000`` page of the whole table, an item by id (64 ids in turn), and a page deep in the
table (offset 500,000; ours also through the cursor of its next link). Every URL is checked
once (status 200, number of features) before it is loaded. Servers only ever listen on
127.0.0.1 and every process started is stopped at the end.

Each scenario is loaded at every concurrency of ``--concurrency`` (default 1 and 4 connections).

``python -m bench api_vs_tipg [--parcels N] [--duration S] [--concurrency 1,4]
[--only ours,tipg,stock,sql] [--scenarios dense,item,…]``;
results in ``bench/results/api_vs_tipg.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
import psycopg
import yaml
from psycopg import sql

from bench.common import (
    PROJECT,
    RESULTS,
    git_state,
    pause,
    sample_data,
    say,
    sdi_env,
    write_job,
)
from sdi.api.paging import EXACT_COUNT_BELOW

API_DB = "sdi_bench_api"
PROPERTIES = [
    "natural_key",
    "commune_code",
    "admin_vintage",
    "sheet_no",
    "parcel_no",
    "land_use_codes",
    "land_use_primary",
    "land_use_source",
    "declared_area_m2",
    "area_m2",
    "address",
    "valid_from",
]
DEEP_OFFSET = 500_000
DATABASE_SETTINGS = ("max_parallel_workers_per_gather = 0", "jit = off")
BBOX_HALF = 0.006  # degrees: a few thousand parcels in the cities of the 1 M sample
DENSE_HALF = 0.001  # degrees: a 0.002° box, 50-300 parcels where the data is densest
DENSE_MATCH = (50, 300)
VENV_TIPG = RESULTS / "venv-tipg"
VENV_STOCK = RESULTS / "venv-pygeoapi"
GOALS = {  # scenario (at every concurrency): (versus, minimum ratio of req/s)
    "dense bbox+limit=100": [("tipg", 2.0)],
    "bbox+limit=100": [("tipg", 2.0), ("stock pygeoapi", 5.0)],
    "limit=1000": [("tipg", 1.5)],
    "item by id": [("tipg", 1.5)],
}


# -- data --------------------------------------------------------------------------------
def database(parcels: int) -> str:
    """URL of ``sdi_bench_api`` with ~``parcels`` current parcels (loaded once, by our ETL)."""
    from sdi.db import LocalCluster
    from sdi.db.migrate import upgrade

    cluster = LocalCluster()
    cluster.start()
    cluster.ensure_database(API_DB)
    url = cluster.url(API_DB)
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        # The same settings for every server (ours sets them for its own sessions anyway):
        # parallel workers and JIT cost 20-100 ms per spatial query on this host.
        for setting in DATABASE_SETTINGS:
            conn.execute(sql.SQL("ALTER DATABASE {} SET " + setting).format(sql.Identifier(API_DB)))
    with psycopg.connect(url) as conn:
        have = conn.execute("SELECT count(*) FROM land.parcels_current").fetchone()[0]
    if have >= 0.95 * parcels:
        say(f"{API_DB}: {have:,} parcels already loaded")
        return url
    data_dir = sample_data(parcels)
    with tempfile.TemporaryDirectory(prefix="sdi-bench-api-jobs.") as jobs:
        write_job(Path(jobs))
        env = sdi_env(url, data_dir, Path(jobs))
        say(f"loading {parcels:,} parcels into {API_DB} with sdi etl …")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sdi", "etl", "run", "bench_parcels", "--force"],
            env=env,
            cwd=PROJECT,
            check=True,
        )
        say(f"loaded in {time.perf_counter() - start:.0f} s")
    pause(url)
    return url


def inputs(url: str) -> dict:
    """The bboxes, ids and deep offset the scenarios use (deterministic)."""
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM land.parcels_current").fetchone()[0]
        step = max(total // 16, 1)
        centres = conn.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM ("
            "SELECT geom, row_number() OVER (ORDER BY id) AS n FROM land.parcels_current) s "
            "WHERE n %% %s = 1 LIMIT 16",
            (step,),
        ).fetchall()
        bboxes = [(x - BBOX_HALF, y - BBOX_HALF, x + BBOX_HALF, y + BBOX_HALF) for x, y in centres]
        counts = [
            conn.execute(
                "SELECT count(*) FROM land.parcels_current "
                "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                box,
            ).fetchone()[0]
            for box in bboxes
        ]
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM land.parcels_current WHERE id % 15331 = 7 ORDER BY id LIMIT 64"
            )
        ]
        # The densest 0.002° cells (by parcel centroids) whose box matches 50-300 parcels.
        cells = conn.execute(
            "SELECT (floor(ST_X(c) / %(s)s) + 0.5) * %(s)s, (floor(ST_Y(c) / %(s)s) + 0.5) * %(s)s "
            "FROM (SELECT ST_Centroid(geom) c FROM land.parcels_current) p "
            "GROUP BY 1, 2 HAVING count(*) BETWEEN %(lo)s AND %(hi)s ORDER BY count(*) DESC "
            "LIMIT 64",
            {"s": 2 * DENSE_HALF, "lo": DENSE_MATCH[0], "hi": int(DENSE_MATCH[1] * 0.8)},
        ).fetchall()
        dense, dense_counts = [], []
        for x, y in cells:
            box = (x - DENSE_HALF, y - DENSE_HALF, x + DENSE_HALF, y + DENSE_HALF)
            matched = conn.execute(
                "SELECT count(*) FROM land.parcels_current "
                "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                box,
            ).fetchone()[0]
            if DENSE_MATCH[0] <= matched <= DENSE_MATCH[1]:
                dense.append(box)
                dense_counts.append(matched)
            if len(dense) == 16:
                break
    return {
        "parcels": total,
        "dense_bboxes": dense,
        "dense_counts": dense_counts,
        "bboxes": bboxes,
        "bbox_counts": counts,
        "ids": ids,
        "deep_offset": min(DEEP_OFFSET, total // 2),
    }


# -- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}) before {url} answered")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def ready(server: Server, path: str) -> None:
    """Wait for the server; stop it (and fail) if it does not come up."""
    try:
        wait_ready(server.base + path, server.process)
    except BaseException:
        server.stop()
        raise


class Server:
    """A server process we started (its own session, stopped by its process group)."""

    def __init__(self, name: str, base: str, collection: str, extra: dict[str, str]) -> None:
        self.name, self.base, self.collection, self.extra = name, base, collection, extra
        self.process: subprocess.Popen | None = None
        self.stop_command: list[str] | None = None
        self.env: dict[str, str] | None = None

    def items(self, **params) -> str:
        query = {**params, **self.extra}
        return f"/collections/{self.collection}/items?" + urlencode(
            query, safe=",:/", quote_via=quote
        )

    def item(self, identifier: int) -> str:
        path = f"/collections/{self.collection}/items/{identifier}"
        return path + ("?" + urlencode(self.extra, safe=",") if self.extra else "")

    def stop(self) -> None:
        if self.stop_command:
            subprocess.run(self.stop_command, env=self.env, cwd=PROJECT, check=False)
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def uvicorn_options(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--log-level", "warning"]


def start_ours(url: str, workdir: Path, **more_env: str) -> Server:
    """Our server on the bench database with the parcels collection only (``more_env``: more
    settings, e.g. the read replicas of bench/replica_reads.py)."""
    port = free_port()
    # The project's configuration with the parcels collection only: the bench database holds
    # the parcels, and the other servers publish that one table too.
    config = yaml.safe_load((PROJECT / "pygeoapi-config.yml").read_text(encoding="utf-8"))
    config["resources"] = {k: v for k, v in config["resources"].items() if k == "parcels"}
    config_path = workdir / "ours-pygeoapi.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    env = dict(os.environ)
    env.update(
        SDI_PYGEOAPI_CONFIG=str(config_path),
        SDI_DATABASE_URL=url,
        SDI_STATE_DIR=str(workdir / "ours-state"),
        SDI_HOST="127.0.0.1",
        SDI_PORT=str(port),
        SDI_WORKERS="2",
        SDI_PUBLIC_URL=f"http://127.0.0.1:{port}",
        # wrk is one client address: measure throughput, not the per-address rate limit
        SDI_RATE_LIMIT_ANONYMOUS="0",
        SDI_SERVE_WORKER="false",
        **more_env,
    )
    server = Server("ours", f"http://127.0.0.1:{port}", "parcels", {})
    server.env = env
    server.stop_command = [sys.executable, "-m", "sdi", "serve", "stop"]
    subprocess.run(
        [sys.executable, "-m", "sdi", "serve", "start"], env=env, cwd=PROJECT, check=True
    )
    ready(server, "/conformance?f=json")
    return server


def start_tipg(url: str, workdir: Path) -> Server:
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        TIPG_DB_SCHEMAS='["land"]',
        TIPG_MAX_FEATURES_PER_QUERY="10000",
    )
    log = (workdir / "tipg.log").open("ab")
    process = subprocess.Popen(
        [str(VENV_TIPG / "bin/uvicorn"), "tipg.main:app", *uvicorn_options(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(
        "tipg",
        f"http://127.0.0.1:{port}",
        "land.parcels_current",
        {"properties": ",".join(PROPERTIES)},
    )
    server.process = process
    ready(server, "/collections")
    return server


def start_stock(url: str, workdir: Path) -> Server:
    port = free_port()
    parts = urlsplit(url)
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "pretty_print": False,
            "limits": {"default_items": 100, "max_items": 10000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png", "attribution": "OSM"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {
                "title": "bench",
                "description": "stock pygeoapi",
                "keywords": ["bench"],
                "keywords_type": "theme",
                "terms_of_service": "https://example.org",
                "url": "https://example.org",
            },
            "license": {"name": "CC-BY 4.0", "url": "https://example.org"},
            "provider": {"name": "bench", "url": "https://example.org"},
            "contact": {
                "name": "bench",
                "email": "bench@example.org",
                "url": "https://example.org",
            },
        },
        "resources": {
            "parcels": {
                "type": "collection",
                "title": "parcels",
                "description": "parcels",
                "keywords": ["parcels"],
                "extents": {
                    "spatial": {
                        "bbox": [106.4, 20.6, 108.2, 21.7],
                        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                    }
                },
                "providers": [
                    {
                        "type": "feature",
                        "name": "PostgreSQL",
                        "data": {
                            "host": parts.hostname,
                            "port": parts.port or 5432,
                            "dbname": parts.path.lstrip("/"),
                            "user": parts.username,
                            "password": parts.password,
                            "search_path": ["land", "public"],
                        },
                        "id_field": "id",
                        "table": "parcels_current",
                        "geom_field": "geom",
                        "properties": PROPERTIES,
                    }
                ],
            }
        },
    }
    config_path = workdir / "stock-pygeoapi.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    openapi = workdir / "stock-openapi.yml"
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config_path), PYGEOAPI_OPENAPI=str(openapi))
    document = subprocess.run(
        [str(VENV_STOCK / "bin/pygeoapi"), "openapi", "generate", str(config_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    openapi.write_text(document)
    log = (workdir / "stock.log").open("ab")
    process = subprocess.Popen(
        [str(VENV_STOCK / "bin/uvicorn"), "pygeoapi.starlette_app:APP", *uvicorn_options(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server("stock pygeoapi", f"http://127.0.0.1:{port}", "parcels", {})
    server.process = process
    ready(server, "/conformance?f=json")
    return server


# -- load ---------------------------------------------------------------------------------
WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept"] = "application/geo+json"})
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"errors\\":%%d,\\"non_2xx\\":%%d," ..
    "\\"p50_us\\":%%d,\\"p99_us\\":%%d,\\"bytes\\":%%d}\\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), summary.bytes))
end
"""


def wrk(base: str, paths: list[str], duration: float, connections: int) -> dict:
    lua = WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "30s"]
        out = subprocess.run(
            [*command, "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def check(base: str, paths: list[str]) -> dict:
    """Every URL answers 200 with features; what the first says about numberMatched."""
    with httpx.Client(base_url=base, timeout=120, headers={"Accept": "application/geo+json"}) as c:
        first = None
        for path in paths:
            response = c.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{base}{path}: {response.status_code} {response.text[:300]}")
            body = response.json()
            if first is None:
                first = body
            if body.get("type") == "FeatureCollection" and not body["features"]:
                raise RuntimeError(f"{base}{path}: no features")
    return {
        "numberMatched": first.get("numberMatched"),
        "numberReturned": first.get("numberReturned", 1 if first.get("type") == "Feature" else 0),
        "bytes": len(json.dumps(first)),
    }


def scenarios(server: Server, data: dict) -> dict[str, list[str]]:
    bbox = [",".join(f"{v:.6f}" for v in box) for box in data["bboxes"]]
    dense = [",".join(f"{v:.6f}" for v in box) for box in data.get("dense_bboxes", [])]
    out = {
        "dense bbox+limit=100": [server.items(bbox=b, limit=100) for b in dense],
        "bbox+limit=100": [server.items(bbox=b, limit=100) for b in bbox],
        "limit=1000": [server.items(limit=1000)],
        "first page limit=100": [server.items(limit=100)],
        "item by id": [server.item(i) for i in data["ids"]],
        f"offset={data['deep_offset']:,} limit=100": [
            server.items(offset=data["deep_offset"], limit=100)
        ],
    }
    if server.name == "ours":  # the next link of the page before the deep one: a seek
        with httpx.Client(base_url=server.base, timeout=300) as c:
            before = c.get(server.items(offset=data["deep_offset"] - 100, limit=100)).json()
        link = next(x["href"] for x in before["links"] if x["rel"] == "next")
        parts = urlsplit(link)
        # Our next links ask for 1,000 features (NEXT_PAGE_LIMIT); the cursor holds for any
        # limit: ask for 100, as the first page does, to compare like with like.
        query = urlencode(
            [(k, "100" if k == "limit" else v) for k, v in parse_qsl(parts.query)],
            safe=",:/",
            quote_via=quote,
        )
        out["deep page via next link (cursor)"] = [f"{parts.path}?{query}"]
    return out


def measure_once(server: Server, name: str, paths: list[str], args, connections: int) -> dict:
    wrk(server.base, paths, 1.0, connections)  # warm-up
    load = os.getloadavg()[0]
    result = wrk(server.base, paths, args.duration, connections)
    result.update(load_before=round(load, 2), urls=len(paths), example=paths[0][:300])
    say(
        f"  {server.name:15s} {name:36s} {result['rps']:9.1f} req/s  "
        f"p50 {result['p50_us'] / 1000:6.1f} ms  (load {load:.1f})"
    )
    if result["errors"] or result["non_2xx"]:
        raise RuntimeError(f"{server.name} {name}: errors {result}")
    return result


def summarise(samples: list[dict]) -> dict:
    """The round with the median throughput, with every round's throughput beside it."""
    ordered = sorted(samples, key=lambda r: r["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["rps_samples"] = [round(r["rps"], 1) for r in samples]
    chosen["load_samples"] = [r.get("load_before") for r in samples]
    return chosen


def sql_direct(url: str, data: dict, duration: float, connections: int) -> dict:
    """The GeoJSON of 100 features of a bbox, asked of PostGIS directly (4 threads)."""
    statement = """
        SELECT json_build_object('type', 'FeatureCollection', 'features',
               coalesce(json_agg(f.feature), '[]'::json))::text
        FROM (SELECT json_build_object('type', 'Feature', 'id', t.id,
                     'geometry', ST_AsGeoJSON(t.geom, 7)::json,
                     'properties', json_build_object({props})) AS feature
              FROM land.parcels_current t
              WHERE ST_Intersects(t.geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))
              ORDER BY t.id LIMIT 100) f
    """.format(props=", ".join(f"'{p}', t.{p}" for p in PROPERTIES))
    counts = [0] * connections
    stop = time.monotonic() + duration
    latencies: list[float] = []

    def worker(n: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            i = n
            while time.monotonic() < stop:
                box = data["bboxes"][i % len(data["bboxes"])]
                t = time.perf_counter()
                conn.execute(statement, box).fetchone()
                latencies.append(time.perf_counter() - t)
                counts[n] += 1
                i += 1

    load = os.getloadavg()[0]
    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    rps = sum(counts) / elapsed
    say(f"  {'SQL (psycopg)':15s} {'bbox+limit=100':36s} {rps:9.1f} q/s")
    return {
        "rps": rps,
        "requests": sum(counts),
        "p50_us": int(statistics.median(latencies) * 1e6),
        "load_before": round(load, 2),
    }


# -- report -------------------------------------------------------------------------------
def verdicts(results: dict[str, dict]) -> list[dict]:
    out = []
    ours = results.get("ours", {})
    for base, goals in GOALS.items():
        for other, minimum in goals:
            for scenario in [k for k in ours if k == base or k.startswith(base + " @")]:
                if scenario not in results.get(other, {}):
                    continue
                ratio = ours[scenario]["rps"] / results[other][scenario]["rps"]
                out.append(
                    {
                        "scenario": scenario,
                        "versus": other,
                        "ratio": round(ratio, 2),
                        "goal": minimum,
                        "met": ratio >= minimum,
                    }
                )
    if ours:
        deep = next((k for k in ours if k.startswith("deep page")), None)
        first = next((v for k, v in ours.items() if k.startswith("first page limit=100")), None)
        if deep and first:
            cost = first["rps"] / ours[deep]["rps"]
            out.append(
                {
                    "scenario": "deep page cost vs first page (ours, cursor)",
                    "versus": "ours first page",
                    "ratio": round(cost, 2),
                    "goal": "≤ 2",
                    "met": cost <= 2,
                }
            )
    return out


def markdown(report: dict) -> str:
    results = report["results"]
    servers = [s for s in ("ours", "tipg", "stock pygeoapi", "sql") if s in results]
    names = list(dict.fromkeys(k for s in servers for k in results[s]))
    lines = [
        f"# OGC API: ours vs tipg vs stock pygeoapi — {report['data']['parcels']:,} parcels "
        f"({report['started_at']})",
        "",
        f"Host: {report['host']['cpus']} CPUs, Python {report['host']['python']}; servers with "
        f"2 workers on 127.0.0.1; load: wrk, 1 thread, {report['connections']} connections "
        "(the scenario's `@cN`), "
        f"{report['duration']:g} s a scenario after a 1 s warm-up, {report['rounds']} rounds "
        f"with the servers in turn (median round shown); code {report['git']['commit']}"
        + (f" + uncommitted {', '.join(report['git']['dirty'])}" if report["git"]["dirty"] else "")
        + ".",
        "",
        "Requests per second (higher is better); in brackets the median latency in ms.",
        "",
        "| scenario | " + " | ".join(servers) + " | ours ÷ tipg | ours ÷ stock |",
        "|---|" + "---:|" * (len(servers) + 2),
    ]
    for name in names:
        cells = []
        for s in servers:
            r = results[s].get(name)
            cells.append(f"{r['rps']:,.0f} ({r['p50_us'] / 1000:.1f})" if r else "")
        ours = results.get("ours", {}).get(name)
        ratios = []
        for other in ("tipg", "stock pygeoapi"):
            r = results.get(other, {}).get(name)
            ratios.append(f"{ours['rps'] / r['rps']:.2f}×" if ours and r else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    lines += ["", "| goal | measured | target | met |", "|---|---:|---:|---|"]
    for v in report["verdicts"]:
        goal = v["goal"] if isinstance(v["goal"], str) else f"≥ {v['goal']}×"
        lines.append(
            f"| {v['scenario']}: ours vs {v['versus']} | {v['ratio']}× | {goal} | "
            f"{'yes' if v['met'] else '**no**'} |"
        )
    counts = report["data"]["bbox_counts"]
    dense = report["data"].get("dense_counts") or [0]
    lines += [
        "",
        f"dense boxes: {len(report['data'].get('dense_bboxes', []))} of {2 * DENSE_HALF}° "
        f"(median {statistics.median(dense):,.0f} parcels, {min(dense):,}–{max(dense):,}). ",
        f"bboxes: {len(counts)} of {2 * BBOX_HALF}° (median {statistics.median(counts):,.0f} "
        f"parcels, {min(counts):,}–{max(counts):,}); ids: {len(report['data']['ids'])}. "
        "numberMatched of the first URL of each scenario:",
        "",
    ]
    for s in servers:
        if s == "sql":
            continue
        matched = ", ".join(
            f"{name}: {r.get('numberMatched')}"
            for name, r in results[s].items()
            if r.get("numberMatched") is not None
        )
        lines.append(f"* {s}: {matched}")
    lines += ["", report["notes"], ""]
    return "\n".join(lines)


NOTES = (
    "All servers serve the same view and the same 12 properties (tipg through "
    "`properties=`, stock pygeoapi through its provider's `properties`), from the same "
    f"database, set for all with {' and '.join(DATABASE_SETTINGS)}. tipg and stock "
    "pygeoapi count every match exactly on every request (`COUNT(*)`) and page with OFFSET; "
    f"ours counts exactly under {EXACT_COUNT_BELOW:,} estimated rows (in the same pass as the "
    "page), else gives the planner's estimate (the count of the last page is exact and free), "
    "and its next links seek with a keyset cursor; a deep `offset` in id order finds the "
    "page's first id with an id-only scan, then seeks. *load* in the JSON is the 1-minute "
    "load average before each measurement: on this 2-CPU host, other work competing for the "
    "CPUs makes a number pessimistic (the servers are measured in turn, so alike)."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api_vs_tipg", description=__doc__)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds a scenario")
    parser.add_argument(
        "--concurrency", default="1,4", help="connections of each load, comma-separated"
    )
    parser.add_argument(
        "--scenarios", default="", help="only scenarios whose name contains one of these words"
    )
    parser.add_argument("--rounds", type=int, default=3, help="the median round is reported")
    parser.add_argument("--only", default="ours,tipg,stock,sql")
    parser.add_argument("--load-only", action="store_true", help="load the data and stop")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    begin = time.perf_counter()
    url = database(args.parcels)
    if args.load_only:
        return 0
    data = inputs(url)
    say(f"{data['parcels']:,} parcels; bbox sizes {data['bbox_counts']}")
    workdir = RESULTS / "api-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    starters = {"ours": start_ours, "tipg": start_tipg, "stock": start_stock}
    servers: list[Server] = []
    samples: dict[str, dict[str, list[dict]]] = {}
    try:
        for key, start in starters.items():
            if key in wanted:
                say(f"starting {key} …")
                servers.append(start(url, workdir))
        words = [w for w in args.scenarios.split(",") if w]
        plans = {
            server.name: {
                name: paths
                for name, paths in scenarios(server, data).items()
                if not words or any(w in name for w in words)
            }
            for server in servers
        }
        levels = [int(c) for c in args.concurrency.split(",") if c]
        args.connections = ",".join(map(str, levels))
        info = {
            server.name: {
                name: check(server.base, paths) for name, paths in plans[server.name].items()
            }
            for server in servers
        }
        names = list(dict.fromkeys(n for plan in plans.values() for n in plan))
        # Rounds, and within a round the servers in turn on each scenario: whatever else the
        # host is doing weighs on all of them alike.
        for round_ in range(1, args.rounds + 1):
            say(f"round {round_} of {args.rounds}")
            for name in names:
                for level in levels:
                    label = f"{name} @c{level}" if len(levels) > 1 else name
                    for server in servers:
                        if name in plans[server.name]:
                            paths = plans[server.name][name]
                            result = measure_once(server, label, paths, args, level)
                            result.update(info[server.name][name])
                            samples.setdefault(server.name, {}).setdefault(label, []).append(result)
                    if name == "bbox+limit=100" and "sql" in wanted:
                        result = sql_direct(url, data, args.duration, level)
                        samples.setdefault("sql", {}).setdefault(label, []).append(result)
    finally:
        for server in servers:
            server.stop()
    results = {
        server: {name: summarise(runs) for name, runs in by_name.items()}
        for server, by_name in samples.items()
    }

    report = {
        "started_at": started_at,
        "total_seconds": round(time.perf_counter() - begin, 1),
        "duration": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "data": data,
        "host": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
        },
        "git": git_state(),
        "results": results,
        "verdicts": verdicts(results),
        "notes": NOTES,
    }
    out = RESULTS / "api_vs_tipg"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
