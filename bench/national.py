"""Cost growth of the national warehouse: from 1 M to 10 M parcels over 34 provinces.

    .venv/bin/python -m bench.national [--parcels 1000000,10000000] [--provinces 34]
        [--province-parcels 50000] [--duration 8] [--rounds 2] [--profile]
    ./dev bench national [...]

Per step (total parcels), a nation is generated once (``sdi.samples.nation``, cached under
bench/results/data/nation-<provinces>-<parcels>/): every province's parcels in its own
GeoPackage, shared by population, except Quảng Ninh (22), which has ``--province-parcels``
at every step — the province that is re-delivered and queried, so that only the rest of the
nation grows. A database of its own (``sdi_bench_national_<parcels>``) is loaded once by the
real ETL jobs: communes and zoning of every province, the parcels of all provinces in one
run (the load time), and Quảng Ninh's gauges, flood zones and readings (the standard sample),
so warnings have something to expose. Then:

- **API**: our server (``sdi serve``, 2 workers) answers bbox pages (0.002° boxes in the
  densest commune of province 22; limit 100 and 1000) and items by id, at concurrency 1 and 4,
  for ``--duration`` seconds each; p50 in ms (Python client threads: the same client at every
  step, so the ratios count, not the absolute values);
- **re-delivery**: province 22's whole file delivered again, every tenth parcel changed and
  one in a hundred gone (the next round delivers the original back): the run's wall time,
  and inside it the planning refresh (``planning.refreshes``, scoped to the touched
  communes) and the warnings recompute (``hazard.warning_recomputes``);
- **warnings**: ``recompute()`` once more on the unchanged warehouse (rolled back);
- **size**: ``pg_database_size`` and the parcels load's seconds per million rows.

The table gives every figure and its ratio to the first step. Results go to
bench/results/national.json and .md (and docs/national-warehouse.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psycopg
import yaml

from bench._scale_db import scale_database
from bench.common import DATA, PROJECT, RESULTS, git_state, sample_data, say

PROVINCE = "22"  # re-delivered and queried; the same size at every step
WIDE_BOUNDS = [102.0, 8.0, 110.0, 23.5]  # the country: the jobs' bounds check
HAZARD_JOBS = ("hazard_gauges", "hazard_flood_zones", "hazard_gauge_readings")
BOX = 0.002  # degrees: a dense box holds 50–300 parcels


# -- data and database ---------------------------------------------------------------------------
def nation_data(provinces: int, parcels: int, province_parcels: int) -> Path:
    from sdi.samples.nation import generate_nation

    target = DATA / f"nation-{provinces}-{parcels}-{province_parcels}"
    if (target / "manifest.json").exists():
        return target
    say(f"generating a nation: {parcels:,} parcels over {provinces} provinces …")
    start = time.perf_counter()
    generate_nation(
        target, provinces=provinces, parcels=parcels, fixed={PROVINCE: province_parcels}
    )
    say(f"generated in {time.perf_counter() - start:.0f} s")
    return target


def jobs_dir(work: Path) -> Path:
    """The jobs as in etl/jobs/, parcels read from the per-province GeoPackages, bounds the
    country's."""
    jobs = work / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for name in ("admin_communes", "land_zoning", "land_parcels", *HAZARD_JOBS):
        spec = yaml.safe_load((PROJECT / "etl" / "jobs" / f"{name}.yml").read_text())
        if name == "land_parcels":
            spec["source"] = {
                "path": "land/parcels_*.gpkg",
                "layer": "parcels",
                "encoding": "utf-8",
                "srid": 5899,
            }
        if name in ("admin_communes", "land_zoning", "land_parcels"):
            spec.setdefault("validation", {})["bounds"] = WIDE_BOUNDS
        (jobs / f"{name}.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return jobs


def run(url: str, jobs: Path, name: str, source: Path):
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job
    from sdi.settings import get_settings

    settings = get_settings().model_copy(update={"source_dir": source, "jobs_dir": jobs})
    start = time.perf_counter()
    result = run_job(load_job(jobs / f"{name}.yml", settings), url, settings=settings)
    if result.status != "succeeded":
        raise RuntimeError(f"{name}: {result.status}: {result.message}")
    return result, time.perf_counter() - start


def load(url: str, data: Path, work: Path) -> dict:
    """Load the step's inputs once (a rerun finds them: the load time is kept in the db)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.bench_national (k text PRIMARY KEY, v jsonb)"
        )
        row = conn.execute("SELECT v FROM public.bench_national WHERE k = 'load'").fetchone()
    if row:
        return row[0]
    jobs = jobs_dir(work)
    run(url, jobs, "admin_communes", data)
    run(url, jobs, "land_zoning", data)
    hazard = sample_data(24_000)  # Quảng Ninh's gauges, zones and readings (fixed in size)
    for name in HAZARD_JOBS:
        run(url, jobs, name, hazard)
    result, seconds = run(url, jobs, "land_parcels", data)
    loaded = {"parcels_rows": result.counts.added, "parcels_load_s": round(seconds, 1)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("INSERT INTO public.bench_national VALUES ('load', %s)", (json.dumps(loaded),))
    return loaded


def modified_copy(original: Path, target: Path, step: int = 10, gone: int = 100) -> Path:
    """The province's file with every ``step``-th parcel's declared area changed and every
    ``gone``-th parcel left out."""
    import pyogrio.raw

    meta, _, geometry, fields = pyogrio.raw.read(original, layer="parcels")
    names = list(meta["fields"])
    keep = np.ones(len(geometry), dtype=bool)
    keep[::gone] = False
    area = names.index("DIENTICH")
    fields = list(fields)
    changed = fields[area].astype(float).copy()
    changed[::step] += 1.0
    fields[area] = changed
    target.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.raw.write(
        target,
        geometry[keep],
        [f[keep] for f in fields],
        fields=names,
        layer="parcels",
        driver="GPKG",
        geometry_type=meta["geometry_type"],
        crs=meta["crs"],
        encoding="UTF-8",
    )
    return target


def redeliver(url: str, data: Path, work: Path, rounds: int) -> list[dict]:
    jobs = jobs_dir(work)
    original = data / "land" / f"parcels_{PROVINCE}.gpkg"
    modified_copy(original, work / "changed" / "land" / f"parcels_{PROVINCE}.gpkg")
    plain = work / "plain" / "land"
    plain.mkdir(parents=True, exist_ok=True)
    link = plain / original.name
    if not link.exists():
        link.symlink_to(original)
    out = []
    for i in range(rounds):
        source = work / ("changed" if i % 2 == 0 else "plain")
        result, seconds = run(url, jobs, "land_parcels", source)
        with psycopg.connect(url) as conn:
            planning = conn.execute(
                "SELECT coalesce(sum(duration_ms), 0) FROM planning.refreshes WHERE run_id = %s",
                (result.run_id,),
            ).fetchone()[0]
            warnings = conn.execute(
                "SELECT coalesce(sum(duration_ms), 0) FROM hazard.warning_recomputes "
                "WHERE run_id = %s",
                (result.run_id,),
            ).fetchone()[0]
        counts = result.counts
        out.append(
            {
                "seconds": round(seconds, 2),
                "planning_s": round(float(planning) / 1000, 3),
                "warnings_s": round(float(warnings) / 1000, 3),
                "updated": counts.updated,
                "added": counts.added,
                "retired": counts.retired,
                "communes": len(counts.communes or ()),
            }
        )
        say(f"re-delivery {i + 1}: {out[-1]}")
    return out


def profiled_redelivery(url: str, work: Path, rounds: int) -> list[dict]:
    """One more re-delivery after the timed rounds (of the changed file after an even number
    of them, else of the original), its stages timed (bench/_instrument.py): where a
    province's re-delivery spends its time."""
    from bench._instrument import Clock, Instrumented

    now, then = ("changed", "plain") if rounds % 2 == 0 else ("plain", "changed")
    clock = Clock()
    with Instrumented(clock):
        run(url, jobs_dir(work), "land_parcels", work / now)
    top = clock.report()[:15]
    say("re-delivery stages: " + "; ".join(f"{r['section']} {r['seconds']} s" for r in top))
    run(url, jobs_dir(work), "land_parcels", work / then)  # as the timed rounds left it
    return top


def steady_warnings(url: str) -> float:
    from sdi.hazard.warnings import recompute

    with psycopg.connect(url) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
        with conn.transaction(force_rollback=True):
            start = time.perf_counter()
            recompute(conn, run_id, trigger="bench")
            return time.perf_counter() - start


# -- the API -------------------------------------------------------------------------------------
def targets(url: str, n: int = 24) -> dict:
    """Boxes around parcels of the densest commune of the province, and their ids."""
    with psycopg.connect(url) as conn:
        commune = conn.execute(
            "SELECT commune_code FROM land.parcels_current WHERE province_code = %s "
            "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
            (PROVINCE,),
        ).fetchone()[0]
        rows = conn.execute(
            "SELECT id, ST_X(c), ST_Y(c) FROM (SELECT id, natural_key, "
            "ST_PointOnSurface(geom) AS c FROM land.parcels_current "
            "WHERE province_code = %s AND commune_code = %s) p ORDER BY md5(natural_key) LIMIT %s",
            (PROVINCE, commune, n),
        ).fetchall()
    half = BOX / 2
    return {
        "commune": commune,
        "ids": [r[0] for r in rows],
        "bboxes": [(x - half, y - half, x + half, y + half) for _, x, y in rows],
    }


def latencies(base: str, paths: list[str], duration: float, concurrency: int) -> dict:
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def worker(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            i = offset
            while time.perf_counter() < stop:
                path = paths[i % len(paths)]
                i += concurrency
                start = time.perf_counter()
                response = client.get(path, headers={"Accept": "application/geo+json"})
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status_code == 200:
                        times.append(elapsed)
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "p50_ms": round(statistics.median(times) * 1000, 2) if times else None,
        "requests": len(times),
        "errors": errors[0],
    }


def api(url: str, work: Path, duration: float) -> dict:
    from bench.api_vs_tipg import start_ours

    data = targets(url)
    # A load from one address is not a client to throttle (429 above 1,800/min per worker),
    # and a worker replaced mid-measure would show as a latency spike.
    os.environ.update(SDI_RATE_LIMIT_ANONYMOUS="0", SDI_SERVER_MAX_REQUESTS="0")
    server = start_ours(url, work)
    try:
        collection = f"/collections/{server.collection}/items"
        scenarios = {
            "bbox_100": [
                f"{collection}?bbox={','.join(f'{v:.6f}' for v in b)}&limit=100"
                for b in data["bboxes"]
            ],
            "bbox_1000": [
                f"{collection}?bbox={','.join(f'{v:.6f}' for v in b)}&limit=1000"
                for b in data["bboxes"]
            ],
            "item": [f"{collection}/{i}" for i in data["ids"]],
        }
        with httpx.Client(base_url=server.base, timeout=60) as client:  # warm up, check
            for paths in scenarios.values():
                for path in paths[:3]:
                    response = client.get(path)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        out = {}
        for name, paths in scenarios.items():
            for concurrency in (1, 4):
                out[f"{name}_c{concurrency}"] = latencies(server.base, paths, duration, concurrency)
                say(f"{name} c{concurrency}: {out[f'{name}_c{concurrency}']}")
        out["matched_per_box"] = _matched(server.base, scenarios["bbox_1000"])
        return out
    finally:
        server.stop()


def _matched(base: str, paths: list[str]) -> float:
    with httpx.Client(base_url=base, timeout=60) as client:
        return statistics.mean(
            client.get(p, headers={"Accept": "application/geo+json"}).json()["numberReturned"]
            for p in paths[:10]
        )


# -- one step, the table -------------------------------------------------------------------------
def bench_step(args, parcels: int) -> dict:
    data = nation_data(args.provinces, parcels, args.province_parcels)
    url = scale_database("national", parcels, None)
    work = Path(tempfile.mkdtemp(prefix=f"national-{parcels}-"))
    loaded = load(url, data, work)
    with psycopg.connect(url) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM land.parcels_current").fetchone()[0]
        partitions = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'land.parcels'::regclass"
        ).fetchone()[0]
    step = {
        "parcels": rows,
        "partitions": partitions,
        "database_mb": round(size / 2**20),
        "load_s_per_million": round(loaded["parcels_load_s"] / (loaded["parcels_rows"] / 1e6), 1),
        **loaded,
    }
    step["api"] = api(url, work, args.duration)
    step["redelivery"] = redeliver(url, data, work, args.rounds)
    if args.profile:
        step["redelivery_stages"] = profiled_redelivery(url, work, args.rounds)
    step["warnings_steady_s"] = round(steady_warnings(url), 3)
    return step


ROWS = [
    ("bbox limit=100, p50 ms, c1", lambda s: s["api"]["bbox_100_c1"]["p50_ms"]),
    ("bbox limit=100, p50 ms, c4", lambda s: s["api"]["bbox_100_c4"]["p50_ms"]),
    ("bbox limit=1000, p50 ms, c1", lambda s: s["api"]["bbox_1000_c1"]["p50_ms"]),
    ("bbox limit=1000, p50 ms, c4", lambda s: s["api"]["bbox_1000_c4"]["p50_ms"]),
    ("item, p50 ms, c1", lambda s: s["api"]["item_c1"]["p50_ms"]),
    ("item, p50 ms, c4", lambda s: s["api"]["item_c4"]["p50_ms"]),
    (
        "province 22 re-delivery, s (best round)",
        lambda s: min(r["seconds"] for r in s["redelivery"]),
    ),
    (
        "planning refresh in it, s",
        lambda s: min(r["planning_s"] for r in s["redelivery"]),
    ),
    (
        "warnings recompute in it, s",
        lambda s: min(r["warnings_s"] for r in s["redelivery"]),
    ),
    ("warnings recompute, steady, s", lambda s: s["warnings_steady_s"]),
    ("database size, MB", lambda s: s["database_mb"]),
    ("parcels load, s per million rows", lambda s: s["load_s_per_million"]),
]


def markdown(report: dict) -> str:
    steps = report["steps"]
    first = steps[0]
    head = " | ".join(f"{s['parcels']:,} parcels" for s in steps)
    lines = [
        f"| measure | {head} | ratio to the first |",
        "|---|" + "---:|" * (len(steps) + 1),
    ]
    for name, get in ROWS:
        values = [get(s) for s in steps]
        base = get(first)
        ratio = ", ".join(f"{v / base:.2f}×" if base and v is not None else "–" for v in values[1:])
        cells = " | ".join("–" if v is None else f"{v:,}" for v in values)
        lines.append(f"| {name} | {cells} | {ratio or '(one step)'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench national", description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", default="1000000,10000000")
    parser.add_argument("--provinces", type=int, default=34)
    parser.add_argument("--province-parcels", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="one more re-delivery with its stages timed"
    )
    args = parser.parse_args(argv)
    steps = []
    for parcels in (int(p) for p in args.parcels.split(",")):
        say(f"step {parcels:,} parcels")
        steps.append(bench_step(args, parcels))
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "git": git_state(),
            "args": vars(args),
            "steps": steps,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "national.json").write_text(json.dumps(report, indent=2))
        (RESULTS / "national.md").write_text(markdown(report))
        print(markdown(report))
    return 0
