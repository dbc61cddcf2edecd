"""How long the flood warnings take to recompute after a readings load, at two scales.

    .venv/bin/python -m bench.warnings [--parcels 24000,1000000] [--rounds 5] [--url URL]
    ./dev bench warnings [...]

For each scale (parcels of the sample generator, as one GeoPackage, cached under
bench/results/data/ and shared with the ETL benchmark), a database of its own on the local
cluster (``sdi_bench_warnings_<parcels>``, or ``--url`` for one scale) is loaded once with the
inputs of the warnings — gauges, flood zones, buildings, parcels, lamps, pipes, cameras, the
batch readings — by the real ETL jobs (re-runs are skipped by checksum). Then, per round:

- **flood**: a delivery of the recent-readings feed (``etl/feeds/``) puts every gauge of the
  four cities at alarm level III (the 100-year zones: the largest exposure), or back to II
  on odd rounds (so each round escalates or de-escalates every warning). Measured: the whole
  feed run (read, stage, merge, recompute, commit) and the recompute inside it (from
  ``hazard.warning_recomputes``).
- **steady**: ``recompute()`` called again on the unchanged warehouse (nothing to write: the
  cost of levels + zones + exposure).
- **calm**: the cost of the hook when no gauge is in alarm (what every load of parcels,
  buildings… pays outside a flood), measured once after a delivery that clears everything.

- **risk**: the disaster risk levels (``sdi.hazard.risk``, issue 15): after an hourly
  rainfall delivery that puts every rain gauge at 150 mm in 24 h (heavy rain and landslide
  levels everywhere) and a typhoon bulletin whose level-6 winds cover the province (typhoon
  levels for every commune, surge zones activated), the whole recompute — accumulations,
  swaths, rules, exposure of every area, versions, events, CAP messages, combined levels —
  timed by the feed runs that trigger it and once more on the unchanged warehouse.

Goals: recompute ≤ 2 s at demo scale (24,000 parcels), ≤ 30 s with 1,000,000 parcels; a new
typhoon bulletin processed in ≤ 10 s at 1,000,000 parcels.
Results go to bench/results/warnings.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench._scale_db import run_input_jobs, scale_database, table_sizes
from bench.common import PROJECT, RESULTS, git_state, pause, sample_data, say

GOALS = {24_000: 2.0, 1_000_000: 30.0}  # seconds per recompute (all four cities in alarm)
FEED = PROJECT / "etl" / "feeds" / "hazard_gauge_readings_incremental.yml"
# Inputs of the warnings, loaded in this order (the readings last).
INPUT_JOBS = (
    "hazard_gauges",
    "hazard_flood_zones",
    "construction_buildings",
    "land_parcels",
    "utility_street_lamps",
    "utility_water_pipes",
    "utility_cameras",
    "hazard_gauge_readings",
    "admin_communes",
    "hazard_landslide_zones",
    "hazard_storm_surge_zones",
    "hazard_rain_gauges",
    "hazard_rain_readings",
)
RAIN_FEED = PROJECT / "etl" / "feeds" / "hazard_rain_readings_incremental.yml"
TYPHOON_FEED = PROJECT / "etl" / "feeds" / "hazard_typhoon_bulletin.yml"
COUNTED = (
    "construction.buildings_current",
    "land.parcels_current",
    "utility.street_lamps_current",
    "utility.water_pipes_current",
    "utility.cameras_current",
    "hazard.flood_zones_current",
    "hazard.gauges_current",
    "hazard.gauge_readings",
)


# -- data and database -------------------------------------------------------------------------
def _load_inputs(url: str, data: Path, work: Path) -> dict[str, str]:
    done = {}
    for name, result, wall in run_input_jobs(url, data, work, INPUT_JOBS):
        done[name] = f"{result.status} in {wall:.1f} s"
        say(f"  {name}: {done[name]} ({result.counts.added:,} added)")
    return done


# -- one delivery of the feed ------------------------------------------------------------------
def _deliver(url: str, work: Path, level: int, hour: int) -> tuple[float, dict]:
    """Every gauge at ``level`` (0 = below I) one hour after its latest reading; returns the
    feed run's wall time and its recompute record."""
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job
    from sdi.settings import get_settings

    with psycopg.connect(url) as conn:
        gauges = conn.execute(
            """
            SELECT g.gauge_code, g.alarm_level_1, g.alarm_level_2, g.alarm_level_3,
                   (SELECT max(observed_at) FROM hazard.gauge_readings r
                    WHERE r.gauge_code = g.gauge_code)
            FROM hazard.gauges_current g ORDER BY 1
            """
        ).fetchall()
    source = work / f"feed-{hour}"
    (source / "hazard").mkdir(parents=True, exist_ok=True)
    with (source / "hazard" / "gauge_readings_recent.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["gauge_id", "observed_at", "water_level_m"])
        for code, a1, a2, a3, latest in gauges:
            water = {0: a1 - 0.5, 1: a1 + 0.01, 2: a2 + 0.01, 3: a3 + 0.2}[level]
            at = (latest or datetime(2025, 10, 15, tzinfo=UTC)) + timedelta(hours=1)
            writer.writerow([code, at.isoformat(), f"{water:.3f}"])
    settings = get_settings().model_copy(update={"source_dir": source})
    start = time.perf_counter()
    result = run_job(load_job(FEED, settings), url, settings=settings)
    wall = time.perf_counter() - start
    if result.status != "succeeded":
        raise RuntimeError(f"feed run failed: {result.message}")
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            "SELECT * FROM hazard.warning_recomputes WHERE run_id = %s", (result.run_id,)
        )
        record = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))
    record.pop("recomputed_at", None)
    return wall, record


def _steady(url: str) -> tuple[float, dict]:
    """recompute() on an unchanged warehouse, rolled back (it writes nothing anyway)."""
    from sdi.hazard.warnings import recompute

    with psycopg.connect(url) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
        with conn.transaction(force_rollback=True):
            start = time.perf_counter()
            result = recompute(conn, run_id, trigger="bench")
            seconds = time.perf_counter() - start
    return seconds, {"active": result.active, "events": result.events, "changed": result.changed}


def _exposure(url: str) -> dict:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), sum(buildings), sum(parcels), sum(residents_estimate), "
            "sum(critical_facilities), sum(street_lamps), round(sum(water_pipes_m)), "
            "sum(cameras) FROM hazard.warnings_current"
        ).fetchone()
    names = ("warnings", "buildings", "parcels", "residents_estimate", "critical_facilities")
    names += ("street_lamps", "water_pipes_m", "cameras")
    return {k: (float(v) if k == "water_pipes_m" else v) for k, v in zip(names, row, strict=True)}


# -- disaster risk levels --------------------------------------------------------------------------
def _run_feed(spec: Path, source: Path, url: str) -> float:
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job
    from sdi.settings import get_settings

    settings = get_settings().model_copy(update={"source_dir": source})
    start = time.perf_counter()
    result = run_job(load_job(spec, settings), url, settings=settings)
    if result.status != "succeeded":
        raise RuntimeError(f"{spec.stem} failed: {result.message}")
    return time.perf_counter() - start


def _risk(url: str, work: Path) -> dict:
    """A rainy day and a typhoon over the province; the risk recompute's cost. Each figure is
    taken with the 1-minute load average at that moment (the machine is shared)."""
    from sdi.hazard import risk

    load: dict[str, float] = {}

    def loadavg(step: str) -> None:
        load[step] = round(os.getloadavg()[0], 2)

    # the exposure of every commune, counted once per load of the exposed layers (what the
    # load of buildings or parcels pays in its recompute; a manual recompute does the same)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM hazard.area_exposure")
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
        loadavg("warm_communes_s")
        warm = risk.recompute(conn, run_id, trigger="manual")
        conn.commit()

    with psycopg.connect(url) as conn:
        gauges = conn.execute(
            "SELECT g.gauge_code, (SELECT max(observed_at) FROM hazard.rain_readings r "
            "WHERE r.gauge_code = g.gauge_code) FROM hazard.rain_gauges_current g ORDER BY 1"
        ).fetchall()
        lon, lat = conn.execute(
            "SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Collect(geom)) c "
            "FROM admin.communes_current) x"
        ).fetchone()
    latest = max((t for _, t in gauges if t), default=datetime(2025, 10, 15, tzinfo=UTC))
    rain = work / "rain"
    (rain / "hazard").mkdir(parents=True, exist_ok=True)
    with (rain / "hazard" / "rain_readings_recent.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["gauge_id", "observed_at", "rain_mm"])
        for code, _ in gauges:
            for h in range(1, 25):
                at = latest + timedelta(hours=h)
                writer.writerow([code, at.isoformat(), 6.0 + (0.5 if h % 2 else -0.5)])
    loadavg("rain_feed_run_s")
    rain_s = _run_feed(RAIN_FEED, rain, url)
    bulletin = work / "typhoon"
    (bulletin / "hazard").mkdir(parents=True, exist_ok=True)
    issued = latest + timedelta(hours=24)
    with (bulletin / "hazard" / "typhoon_bulletin.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "storm_code",
                "storm_name",
                "issued_at",
                "valid_at",
                "lon",
                "lat",
                "max_wind_level",
                "gust_level",
                "r6_km",
                "r10_km",
            ]
        )
        for h, dx, level in ((0, 2.0, 13), (12, 0.0, 12), (24, -2.0, 9)):
            writer.writerow(
                [
                    "BENCH",
                    "Bench typhoon",
                    issued.isoformat(),
                    (issued + timedelta(hours=h)).isoformat(),
                    round(lon + dx, 4),
                    round(lat - 0.3, 4),
                    level,
                    level + 3,
                    250,
                    90,
                ]
            )
    loadavg("typhoon_feed_run_s")
    typhoon_s = _run_feed(TYPHOON_FEED, bulletin, url)
    # the next hourly delivery: one more hour of rain at every gauge
    hourly = work / "rain-next"
    (hourly / "hazard").mkdir(parents=True, exist_ok=True)
    with (hourly / "hazard" / "rain_readings_recent.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["gauge_id", "observed_at", "rain_mm"])
        for code, _ in gauges:
            writer.writerow([code, (latest + timedelta(hours=25)).isoformat(), 7.0])
    loadavg("next_hourly_rain_feed_run_s")
    hourly_s = _run_feed(RAIN_FEED, hourly, url)
    with psycopg.connect(url) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
        loadavg("recompute_after_hourly_rain_s")
        with conn.transaction(force_rollback=True):
            after_rain = risk.recompute(conn, run_id, trigger="hazard.rain_readings")
        loadavg("full_recompute_s")
        with conn.transaction(force_rollback=True):  # exposure of every active area again
            conn.execute("DELETE FROM hazard.area_exposure")
            result = risk.recompute(conn, run_id, trigger="bench")
        active = conn.execute(
            "SELECT hazard, count(*) FROM hazard.risk_levels_current GROUP BY 1 ORDER BY 1"
        ).fetchall()
        # leave the bench database calm: the storm's final bulletin, rain stopped
        conn.execute("DELETE FROM hazard.typhoon_track WHERE storm_code = 'BENCH'")
        conn.execute("DELETE FROM hazard.rain_readings WHERE observed_at > %s", (latest,))
        risk.recompute(conn, run_id, trigger="bench")
        conn.commit()
    return {
        "warm_communes_s": round(warm.seconds, 3),
        "rain_feed_run_s": round(rain_s, 3),
        "typhoon_feed_run_s": round(typhoon_s, 3),
        "next_hourly_rain_feed_run_s": round(hourly_s, 3),
        "recompute_after_hourly_rain_s": round(after_rain.seconds, 3),
        "full_recompute_s": round(result.seconds, 3),
        "active": dict(active),
        "load_average": load,
    }


# -- one scale -----------------------------------------------------------------------------------
def bench_scale(parcels: int, rounds: int, url: str | None) -> dict:
    data = sample_data(parcels)
    if not (data / "hazard" / "rain_gauges.csv").exists():  # cached before the rain gauges
        from sdi.samples.communes import load_communes
        from sdi.samples.rainfall import write_rainfall

        write_rainfall(data, load_communes(), lambda *_args: None, seed=2025)
    url = scale_database("warnings", parcels, url)
    with tempfile.TemporaryDirectory(prefix="bench-warnings-") as tmp:
        work = Path(tmp)
        say(f"{parcels:,} parcels: loading the inputs (skipped when unchanged) …")
        loads = _load_inputs(url, data, work)
        sizes = table_sizes(url, COUNTED)
        with psycopg.connect(url) as conn:
            hour = conn.execute("SELECT count(*) FROM etl.runs").fetchone()[0]
        _deliver(url, work, 0, hour)  # start calm: no warning
        pause(url)
        calm_seconds, _ = _steady(url)

        floods, steadies, exposure = [], [], {}
        for n in range(rounds):
            level = 3 if n % 2 == 0 else 2
            pause(url)
            wall, record = _deliver(url, work, level, hour + n + 1)
            steady, check = _steady(url)
            if level == 3:
                exposure = _exposure(url)
            floods.append({"level": level, "feed_run_s": round(wall, 3), **record})
            steadies.append(round(steady, 3))
            say(
                f"  round {n + 1}: level {level}: feed run {wall:.2f} s, recompute "
                f"{record['duration_ms'] / 1000:.2f} s ({record['active']} active, "
                f"{record['raised'] + record['escalated'] + record['de_escalated']} events); "
                f"steady recompute {steady:.2f} s ({check})"
            )
        _deliver(url, work, 0, hour + rounds + 1)  # leave the bench database calm
        pause(url)
        risk_levels = _risk(url, work)
        say(f"  risk levels: {risk_levels}")

    recompute_s = [f["duration_ms"] / 1000 for f in floods]
    return {
        "parcels": parcels,
        "database": url.rsplit("/", 1)[-1],
        "sizes": sizes,
        "loads": loads,
        "exposure_at_level_iii": exposure,
        "rounds": floods,
        "median": {
            "recompute_in_feed_run_s": round(statistics.median(recompute_s), 3),
            "feed_run_s": round(statistics.median(f["feed_run_s"] for f in floods), 3),
            "steady_recompute_s": round(statistics.median(steadies), 3),
            "calm_recompute_s": round(calm_seconds, 3),
        },
        "max_recompute_s": round(max(recompute_s), 3),
        "risk_levels": risk_levels,
        "goal_s": GOALS.get(parcels),
    }


# -- report ----------------------------------------------------------------------------------------
def _markdown(report: dict) -> str:
    lines = [
        f"# Flood warnings: recompute after a readings load ({report['when']})",
        "",
        f"Host: {report['host']}; code {report['git']['commit']}"
        + (f" + uncommitted {', '.join(report['git']['dirty'])}" if report["git"]["dirty"] else "")
        + f"; load average at start {report['load_before']}.",
        "",
        "Every gauge of the four cities is put at alarm level III (100-year zones) or back to II "
        "by a delivery of the recent-readings feed; *recompute* is the time inside that run "
        "(levels, zones, exposure, versions, events); *feed run* the whole run; *steady* a "
        "recompute with nothing to change; *calm* the hook's cost when no gauge is in alarm.",
        "",
        "| parcels | buildings | warnings | exposed buildings / parcels (III) | recompute s "
        "(median, max) | feed run s | steady s | calm s | goal s | met |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["scales"]:
        m, e = s["median"], s["exposure_at_level_iii"]
        goal = s["goal_s"]
        met = "yes" if goal and s["max_recompute_s"] <= goal else ("**no**" if goal else "")
        lines.append(
            f"| {s['sizes']['land.parcels_current']:,} "
            f"| {s['sizes']['construction.buildings_current']:,} | {e.get('warnings')} "
            f"| {e.get('buildings', 0):,} / {e.get('parcels', 0):,} "
            f"| {m['recompute_in_feed_run_s']:.2f}, {s['max_recompute_s']:.2f} "
            f"| {m['feed_run_s']:.2f} | {m['steady_recompute_s']:.2f} "
            f"| {m['calm_recompute_s']:.3f} | {goal or ''} | {met} |"
        )
    lines += [
        "",
        "## Disaster risk levels (issue 15)",
        "",
        "The exposure of every commune counted once (what a load of the exposed layers pays; "
        "a manual recompute does the same), then a rainy day at every rain gauge (144 mm in "
        "24 h), then a typhoon bulletin over the province (every commune in the level-6 "
        "swath), then the next hourly rain delivery: the feed runs (each recomputes the risk "
        "levels in its transaction), the recompute after an hourly rain delivery, and a full "
        "recompute with no exposure kept (every active area counted again). Each figure is "
        "followed by the 1-minute load average when it was taken (2 shared CPUs).",
        "",
        "| parcels | buildings | communes counted s | rainy-day feed run s | bulletin feed run s "
        "| next hourly rain feed run s | recompute after hourly rain s | full recompute s "
        "| active |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["scales"]:
        r = s.get("risk_levels") or {}
        if not r:
            continue
        load = r.get("load_average", {})

        def cell(step: str, r: dict = r, load: dict = load) -> str:
            return f"{r[step]:.2f} (load {load.get(step, '?')})"

        lines.append(
            f"| {s['sizes']['land.parcels_current']:,} "
            f"| {s['sizes']['construction.buildings_current']:,} | {cell('warm_communes_s')} "
            f"| {cell('rain_feed_run_s')} | {cell('typhoon_feed_run_s')} "
            f"| {cell('next_hourly_rain_feed_run_s')} | {cell('recompute_after_hourly_rain_s')} "
            f"| {cell('full_recompute_s')} | {r['active']} |"
        )
    lines += ["", "Raw figures: warnings.json."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.warnings", description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", default="24000,1000000", help="comma-separated scales")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", help="database URL (only with a single scale)")
    args = parser.parse_args(argv)
    scales = [int(p) for p in args.parcels.split(",")]
    if args.url and len(scales) != 1:
        parser.error("--url needs a single --parcels value")
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "git": git_state(),
        "load_before": round(os.getloadavg()[0], 2),
        "scales": [bench_scale(p, args.rounds, args.url) for p in scales],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "warnings.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / "warnings.md").write_text(_markdown(report))
    sys.stdout.write(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
