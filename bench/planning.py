"""How long the derived planning and operations layers take to rebuild, at two scales.

    .venv/bin/python -m bench.planning [--parcels 24000,1000000] [--rounds 3] [--url URL]
    ./dev bench planning [...]

For each scale (parcels of the sample generator, as one GeoPackage, cached under
bench/results/data/ and shared with the other benchmarks), a database of its own on the local
cluster (``sdi_bench_planning_<parcels>``, or ``--url`` for one scale) is loaded once with the
inputs of the derived layers by the real ETL jobs (re-runs are skipped by checksum); the
after-load hooks refresh the layers during those loads (their times are reported too, from
``planning.refreshes``). Then, per round, ``sdi.planning.refresh`` rebuilds every derived
table in one transaction, as ``sdi planning refresh`` does; the seconds of each table are
taken from the refresh itself.

Goals: a full refresh ≤ 3 s at demo scale (24,000 parcels); at 1,000,000 parcels each table's
refresh — what a load of one of its inputs pays — is reported against 60 s.
Results go to bench/results/planning.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench._scale_db import run_input_jobs, scale_database, table_sizes
from bench.common import RESULTS, git_state, sample_data, say

GOALS = {24_000: 3.0, 1_000_000: 60.0}  # seconds: whole refresh (demo), per table (1 M)
INPUT_JOBS = (
    "admin_communes",
    "hazard_flood_zones",
    "land_zoning",
    "land_parcels",
    "construction_buildings",
    "construction_permits",
    "utility_street_lamps",
    "utility_wifi_hotspots",
    "utility_cameras",
    "utility_env_sensors",
)
COUNTED = (
    "land.parcels_current",
    "land.zoning_current",
    "construction.buildings_current",
    "construction.permits_current",
    "hazard.flood_zones_current",
)


def _load_inputs(url: str, data: Path, work: Path) -> dict[str, dict]:
    """Run the input jobs; per job its wall time and the hooks' refresh times inside it."""
    done = {}
    for name, result, wall in run_input_jobs(url, data, work, INPUT_JOBS):
        with psycopg.connect(url) as conn:
            hooks = dict(
                conn.execute(
                    "SELECT layer, round(duration_ms::numeric / 1000, 2)::float "
                    "FROM planning.refreshes WHERE run_id = %s ORDER BY refresh_id",
                    (result.run_id,),
                ).fetchall()
            )
        done[name] = {"status": result.status, "seconds": round(wall, 1), "refreshes_s": hooks}
        say(f"  {name}: {result.status} in {wall:.1f} s; refreshes {hooks}")
    return done


def _refresh_round(url: str) -> tuple[dict[str, float], dict[str, int]]:
    from sdi.planning import refresh

    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        result = refresh(conn, trigger="bench")
        conn.commit()
        total = time.perf_counter() - start
    return {**result.seconds, "total": total}, result.rows


def bench_scale(parcels: int, rounds: int, url: str | None) -> dict:
    data = sample_data(parcels)
    url = scale_database("planning", parcels, url)
    with tempfile.TemporaryDirectory(prefix="bench-planning-") as tmp:
        say(f"{parcels:,} parcels: loading the inputs (skipped when unchanged) …")
        loads = _load_inputs(url, data, Path(tmp))
    sizes = table_sizes(url, COUNTED)
    samples: dict[str, list[float]] = {}
    rows: dict[str, int] = {}
    for r in range(rounds):
        seconds, rows = _refresh_round(url)
        for table, s in seconds.items():
            samples.setdefault(table, []).append(s)
        say(f"  round {r + 1}: {seconds['total']:.2f} s")
    median = {t: round(statistics.median(v), 3) for t, v in samples.items()}
    goal = GOALS.get(parcels)
    worst_table = max(v for t, v in median.items() if t != "total")
    met = None
    if goal is not None:
        met = median["total"] <= goal if parcels <= 24_000 else worst_table <= goal
    return {
        "parcels": parcels,
        "sizes": sizes,
        "loads": loads,
        "rows": rows,
        "median_seconds": median,
        "rounds": {t: [round(x, 3) for x in v] for t, v in samples.items()},
        "goal_seconds": goal,
        "goal_met": met,
    }


def _markdown(report: dict) -> str:
    lines = [
        "# Derived planning and operations layers: refresh time",
        "",
        f"Run {report['started']} on {report['machine']} (git {report['git'].get('commit', '?')})."
        " Command: `./dev bench planning " + " ".join(report["argv"]) + "`.",
        "",
    ]
    for scale in report["scales"]:
        lines += [
            f"## {scale['parcels']:,} parcels",
            "",
            "Inputs: " + ", ".join(f"{t.split('.')[1]} {n:,}" for t, n in scale["sizes"].items()),
            "",
            "| derived table | rows | median s | rounds |",
            "|---|---:|---:|---|",
        ]
        for table, s in scale["median_seconds"].items():
            n = scale["rows"].get(table)
            lines.append(
                f"| {table} | {'' if n is None else f'{n:,}'} | {s:.3f} | "
                f"{', '.join(f'{x:.2f}' for x in scale['rounds'][table])} |"
            )
        goal = scale["goal_seconds"]
        if goal is not None:
            what = "whole refresh" if scale["parcels"] <= 24_000 else "slowest table"
            lines += [
                "",
                f"Goal: {what} ≤ {goal:g} s — {'met' if scale['goal_met'] else 'NOT met'}.",
            ]
        lines += ["", "After-load refreshes during the input loads (s):", ""]
        for job, load in scale["loads"].items():
            lines.append(
                f"- {job}: load {load['seconds']} s ({load['status']}); {load['refreshes_s']}"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench planning", description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", default="24000,1000000", help="comma-separated scales")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="use this database (one scale only)")
    args = parser.parse_args(argv)
    scales = [int(p) for p in args.parcels.split(",")]
    if args.url and len(scales) > 1:
        parser.error("--url takes one scale")
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
        "argv": list(argv or []),
        "git": git_state(),
        "scales": [bench_scale(p, args.rounds, args.url) for p in scales],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "planning.json").write_text(json.dumps(report, indent=2, default=str))
    (RESULTS / "planning.md").write_text(_markdown(report))
    say(f"results: {RESULTS / 'planning.md'}")
    return 0 if all(s["goal_met"] is not False for s in report["scales"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
