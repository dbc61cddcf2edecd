"""Where the time of our ETL goes, and what the obvious fixes would save (measured).

    .venv/bin/python -m bench.etl_profile [--parcels N] [--no-experiments] [--py-spy]
    ./dev bench etl_profile [...]

1. An instrumented in-process ``run_job`` (bench/_instrument.py patches timers around the
   pipeline's functions and SQL statements; nothing in sdi/ is edited) for (a) the first
   load into an empty land.parcels, (b) a forced re-run, (c) a skip. Exclusive times add up.
2. Experiments on the same data (bench-only scratch code, product untouched):
   - Python: each vectorised step on the 1 M geometries/keys, the old Python-loop duplicate
     check against the current one, hex vs binary WKB;
   - SQL, on a copy of the staged rows (schema ``bench_scratch``): the merge INSERT with and
     without the md5 row hash, the run_id foreign key, the five indexes (vs building them
     after), the cost of ``md5(ROW(…)::text)`` itself, COPY of hex EWKB into geometry vs
     text, and the merge's anti-join on an *analysed empty* target (quadratic).
3. ``--py-spy``: a flame graph (SVG) of ``sdi etl run --force`` as a child process.

Writes bench/results/etl_profile.json and .md.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench._instrument import Clock, Instrumented
from bench.common import (
    JOB,
    PROJECT,
    RESULTS,
    bench_database,
    git_state,
    last_run,
    parcels_gpkg,
    pause,
    reset_target,
    sample_data,
    say,
    sdi_env,
    write_job,
)

SCRATCH = "bench_scratch"


# -- 1. instrumented runs -----------------------------------------------------------------
def _capture_stage(conn: psycopg.Connection) -> None:
    """Keep a copy of the staged rows for the SQL experiments (excluded from the timings)."""
    conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.stage")
    conn.execute(f"CREATE UNLOGGED TABLE {SCRATCH}.stage AS TABLE sdi_stage")


def _drop_capture(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.stage")


def _capture_loaded(url: str) -> None:
    """A first load goes straight into the target (no stage since 2026-11): the SQL
    experiments then work on the columns it loaded, copied from the target."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"{SCRATCH}.stage",)).fetchone()[0]:
            return
        managed = "'version_id', 'id', 'run_id', 'valid_from', 'valid_to', 'row_hash'"
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'land.parcels'::regclass "
                f"AND attnum > 0 AND NOT attisdropped AND attname NOT IN ({managed}) "
                "ORDER BY attnum"
            )
        ]
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} AS SELECT {} FROM land.parcels").format(
                sql.Identifier(SCRATCH, "stage"), sql.SQL(", ").join(map(sql.Identifier, columns))
            )
        )


def instrumented_run(
    job_path: Path, settings: Any, url: str, *, force: bool, capture: bool
) -> dict:
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job

    clock = Clock()
    plans: dict[str, str] = {}
    start = time.perf_counter()
    with Instrumented(clock, plans, _capture_stage if capture else None) as patched:
        result = run_job(load_job(job_path, settings), url, force=force, settings=settings)
    total = time.perf_counter() - start
    sections = clock.report()
    excluded = sum(r["seconds"] for r in sections if r["section"].startswith("(bench"))
    sections = [r for r in sections if not r["section"].startswith("(bench")]
    accounted = sum(r["seconds"] for r in sections)
    total -= excluded
    sections.append(
        {"section": "unaccounted (Python glue)", "seconds": round(total - accounted, 3)}
    )
    for r in sections:
        r["share"] = round(r["seconds"] / total, 4) if total else 0
    counts = result.counts
    return {
        "status": result.status,
        "rows_read": result.rows_read,
        "rejected": result.rejected,
        "repaired": result.repaired,
        "counts": {k: getattr(counts, k) for k in ("added", "updated", "unchanged", "retired")},
        "seconds": round(total, 3),
        "sections": sections,
        "plans": plans,
        "not_instrumented": patched.missing,
    }


# -- 2a. Python experiments ---------------------------------------------------------------
class _LoopDuplicateKeys:
    """The duplicate check as it was before 09e8ef9 (a Python loop over every key)."""

    def __init__(self) -> None:
        self._first_row: dict[str, str] = {}

    def check(self, keys: Any, rows: Any, path: str, ok: Any) -> None:
        for position, (key, row) in enumerate(zip(keys.to_numpy(), rows, strict=True)):
            if key is None or not ok[position]:
                continue
            first = self._first_row.setdefault(key, f"{path} row {row}")
            if first != f"{path} row {row}":
                pass


def python_experiments(gpkg: Path, job_path: Path, settings: Any) -> dict:
    import numpy as np
    import pyogrio
    import shapely

    from sdi.etl.normalise import Issues, Reprojector, natural_keys
    from sdi.etl.spec import load_job
    from sdi.etl.validate import FirstSeen

    job = load_job(job_path, settings)
    reprojector = Reprojector(5899, settings.storage_srid, settings.province_srid)
    t: dict[str, float] = {}

    def tick(name: str, since: float) -> float:
        now = time.perf_counter()
        t[name] = t.get(name, 0.0) + now - since
        return now

    loop, current = _LoopDuplicateKeys(), FirstSeen("natural key")
    rows_done = 0
    start = time.perf_counter()
    with pyogrio.open_arrow(gpkg, layer="parcels", batch_size=100_000, use_pyarrow=True) as (
        meta,
        reader,
    ):
        now = tick("open", start)
        for batch in reader:
            now = tick("pyogrio: next Arrow batch (GDAL read + decode)", now)
            frame = batch.to_pandas()
            now = tick("Arrow → pandas", now)
            geometry = shapely.from_wkb(frame.pop(meta["geometry_name"]).to_numpy())
            now = tick("shapely.from_wkb", now)
            shapely.is_valid(geometry)
            now = tick("shapely.is_valid", now)
            stored = reprojector.to_storage(geometry)
            now = tick("transform → 4326 (shapely.transform + pyproj)", now)
            shapely.area(geometry)
            now = tick("shapely.area", now)
            shapely.bounds(stored)
            now = tick("shapely.bounds", now)
            with_srid = shapely.set_srid(stored, 4326)
            now = tick("shapely.set_srid", now)
            shapely.to_wkb(with_srid, hex=True, include_srid=True)
            now = tick("to_wkb hex EWKB (current)", now)
            shapely.to_wkb(with_srid, include_srid=True)
            now = tick("to_wkb binary EWKB", now)
            keys = natural_keys(frame, job.natural_key)
            now = tick("natural keys", now)
            rows = np.arange(rows_done, rows_done + len(frame))
            ok = np.ones(len(frame), dtype=bool)
            loop.check(keys, rows, "p", ok)
            now = tick("duplicates: Python loop (before 09e8ef9)", now)
            current.check(keys, rows, "p", Issues(len(frame)))
            now = tick("duplicates: FirstSeen (current, vectorised)", now)
            rows_done += len(frame)
    return {"rows": rows_done, "seconds": {k: round(v, 3) for k, v in t.items()}}


# -- 2b. SQL experiments ------------------------------------------------------------------
def _columns(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (f"{SCRATCH}.stage",),
    ).fetchall()
    return [r[0] for r in rows]


def _timed_sql(url: str, statements: list[str | sql.Composable]) -> float:
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for s in statements:
            conn.execute(s)
        conn.commit()
        return time.perf_counter() - start


INDEXES = [
    "CREATE UNIQUE INDEX ON {t} (natural_key) WHERE valid_to IS NULL",
    "CREATE INDEX ON {t} (id)",
    "CREATE INDEX ON {t} (run_id)",
    "CREATE INDEX ON {t} (commune_code) WHERE valid_to IS NULL",
    "CREATE INDEX ON {t} USING gist (geom)",
]


def sql_experiments(url: str, repeat: int = 2) -> dict:
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        columns = _columns(conn)
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
        staged = conn.execute(f"SELECT count(*) FROM {SCRATCH}.stage").fetchone()[0]
    out["staged_rows"] = staged
    target = sql.Identifier(SCRATCH, "p")
    attributes = [c for c in columns if c != "geom"]
    row = sql.SQL(", ").join(sql.Identifier("s", c) for c in columns)
    md5 = sql.SQL("md5(ROW({})::text)::uuid").format(row)
    constant = sql.SQL("'00000000-0000-0000-0000-000000000000'::uuid")

    def insert(hash_expr: sql.Composable, where: str = "") -> sql.Composable:
        names = sql.SQL(", ").join(
            map(sql.Identifier, [*attributes, "geom", "run_id", "valid_from", "row_hash"])
        )
        values = sql.SQL(", ").join(
            [
                *(sql.Identifier("s", c) for c in attributes),
                sql.SQL("ST_Multi(s.geom)"),
                sql.Literal(run_id),
                sql.SQL("now()"),
                hash_expr,
            ]
        )
        return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} s {}").format(
            target, names, values, sql.Identifier(SCRATCH, "stage"), sql.SQL(where)
        )

    def fresh(indexes: bool, fk: bool) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.p")
            including = (
                "INCLUDING ALL"
                if indexes
                else ("INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS")
            )
            conn.execute(f"CREATE TABLE {SCRATCH}.p (LIKE land.parcels {including})")
            if fk:
                conn.execute(
                    f"ALTER TABLE {SCRATCH}.p ADD FOREIGN KEY (run_id) REFERENCES etl.runs"
                )
        pause(url)

    variants = [
        ("5 indexes + run_id FK + md5 (as ours until 659443d)", True, True, md5),
        ("without the md5 row hash", True, True, constant),
        ("without the run_id foreign key", True, False, md5),
        ("without indexes (FK + md5)", False, True, md5),
        ("bare: no indexes, no FK, no md5", False, False, constant),
    ]
    # Best of `repeat` passes (interleaved): on a shared host the minimum is the signal.
    inserts: dict[str, float] = {}
    build: dict[str, float] = {}
    for _ in range(repeat):
        for name, indexes, fk, hash_expr in variants:
            fresh(indexes, fk)
            seconds = _timed_sql(url, [insert(hash_expr)])
            inserts[name] = round(min(seconds, inserts.get(name, seconds)), 3)
            say(f"sql: insert {name}: {seconds:.2f} s")
            if name.startswith("without indexes"):
                pause(url)
                for statement in INDEXES:
                    what = statement.split(" ON ")[1].replace("{t} ", "")
                    seconds = _timed_sql(url, [statement.format(t=f"{SCRATCH}.p")])
                    build[what] = round(min(seconds, build.get(what, seconds)), 3)
    inserts["  + CREATE INDEX × 5 afterwards (bulk build)"] = round(sum(build.values()), 3)
    out["index_build"] = build
    out["insert_1M"] = inserts

    # The hash alone (server CPU): ROW(…)::text prints the geometry as hex EWKB, then md5.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        hashes = {}
        for name, expr in [
            ("count(*) (scan only)", sql.SQL("count(*)")),
            ("count(md5(ROW(all columns)::text))", sql.SQL("count({})").format(md5)),
            (
                "count(md5(ROW(attributes)::text || ST_AsBinary(geom)))",
                sql.SQL("count(md5(ROW({})::text || encode(ST_AsBinary(s.geom), 'hex')))").format(
                    sql.SQL(", ").join(sql.Identifier("s", c) for c in attributes)
                ),
            ),
            ("count(ST_Multi(geom))", sql.SQL("count(ST_Multi(s.geom))")),
        ]:
            start = time.perf_counter()
            conn.execute(
                sql.SQL("SELECT {} FROM {} s").format(expr, sql.Identifier(SCRATCH, "stage"))
            )
            hashes[name] = round(time.perf_counter() - start, 3)
    out["expressions_1M"] = hashes
    say(f"sql: expressions {hashes}")

    out["copy_1M"] = _copy_experiment(url, columns)
    say(f"sql: copy {out['copy_1M']}")
    out["analysed_empty_target"] = _quadratic(url, insert, md5)
    say(f"sql: analysed empty target {out['analysed_empty_target']}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.p")
    return out


def _copy_experiment(url: str, columns: list[str]) -> dict:
    """COPY of the staged rows as CSV with hex EWKB into geometry vs into text, and binary."""
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        csv = io.BytesIO()
        binary = io.BytesIO()
        with conn.cursor().copy(
            sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT csv)").format(
                names, sql.Identifier(SCRATCH, "stage")
            )
        ) as copy:
            for chunk in copy:
                csv.write(chunk)
        with conn.cursor().copy(
            sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT binary)").format(
                names, sql.Identifier(SCRATCH, "stage")
            )
        ) as copy:
            for chunk in copy:
                binary.write(chunk)
        results["csv_mib"] = round(csv.tell() / 2**20, 1)
        results["binary_mib"] = round(binary.tell() / 2**20, 1)
    pause(url)
    for name, geom_type, data, fmt in [
        ("csv, hex EWKB → geometry (as ours)", "geometry", csv, "csv"),
        ("csv, hex EWKB → text (no geometry parse)", "text", csv, "csv"),
        ("binary, EWKB → geometry", "geometry", binary, "binary"),
    ]:
        with psycopg.connect(url) as conn:
            conn.execute(
                sql.SQL("CREATE TEMP TABLE c (LIKE {} INCLUDING DEFAULTS)").format(
                    sql.Identifier(SCRATCH, "stage")
                )
            )
            conn.execute(f"ALTER TABLE c ALTER geom TYPE {geom_type}")
            start = time.perf_counter()
            with conn.cursor().copy(
                sql.SQL("COPY c ({}) FROM STDIN (FORMAT {})").format(names, sql.SQL(fmt))
            ) as copy:
                copy.write(data.getbuffer())
            results[name] = round(time.perf_counter() - start, 3)
            conn.rollback()
    return results


def _quadratic(url: str, insert: Any, md5: sql.Composable) -> dict:
    """The merge's INSERT … WHERE NOT EXISTS on an empty target whose statistics say 0 rows
    (VACUUM ANALYZE after TRUNCATE/DELETE): a nested loop re-scanning what it inserts."""
    anti = (
        "WHERE NOT EXISTS (SELECT 1 FROM bench_scratch.p t "
        "WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL) "
    )
    out = {}
    for rows in (10_000, 20_000, 40_000):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.p")
            conn.execute(f"CREATE TABLE {SCRATCH}.p (LIKE land.parcels INCLUDING ALL)")
            conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.s")
            conn.execute(f"CREATE TABLE {SCRATCH}.s AS SELECT * FROM {SCRATCH}.stage LIMIT {rows}")
            conn.execute(f"CREATE INDEX ON {SCRATCH}.s (natural_key)")
            conn.execute(f"VACUUM ANALYZE {SCRATCH}.p, {SCRATCH}.s")
        statement = (
            insert(md5, anti).as_string(None).replace(f'"{SCRATCH}"."stage"', f'"{SCRATCH}"."s"')
        )
        with psycopg.connect(url) as conn:
            plan = conn.execute("EXPLAIN " + statement).fetchall()
            conn.rollback()
        seconds = _timed_sql(url, [statement])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {SCRATCH}.p")
            conn.execute(f"VACUUM ANALYZE {SCRATCH}.p")
        hashed = _timed_sql(url, ["SET LOCAL enable_nestloop = off", statement])
        out[f"{rows} rows"] = {
            "seconds": round(seconds, 3),
            "seconds_enable_nestloop_off": round(hashed, 3),
            "plan": "\n".join(r[0] for r in plan),
        }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}.s")
    return out


# -- 3. py-spy ----------------------------------------------------------------------------
def py_spy(env: dict[str, str], url: str) -> dict:
    """Sample ``sdi etl run --force`` (idle frames too: waiting on the server counts)."""
    tool = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(tool).exists():
        return {"error": "py-spy not installed (.venv/bin/pip install py-spy)"}
    raw = RESULTS / "etl_profile_forced.collapsed"  # open with speedscope.app or inferno
    pause(url)
    cmd = [tool, "record", "--idle", "--rate", "100", "--format", "raw", "-o", str(raw), "--"]
    cmd += [sys.executable, "-m", "sdi", "etl", "run", JOB, "--force"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        return {"error": proc.stderr[-2000:]}
    return {"seconds": round(seconds, 3), "collapsed_stacks": str(raw), "top": _top_frames(raw)}


def _top_frames(raw: Path, n: int = 25) -> list[tuple[str, float]]:
    """Self time per (function, file) from collapsed stacks, as shares of all samples."""
    totals: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        leaf = stack.split(";")[-1].rsplit(":", 1)[0]  # function (file), any line
        totals[leaf] = totals.get(leaf, 0) + int(count)
        samples += int(count)
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:n]
    return [(name, round(count / samples, 4)) for name, count in top]


# -- report -------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    lines = [f"# Where the ETL's time goes — {report['rows']:,} parcels ({report['started_at']})"]
    lines.append("")
    lines.append(
        f"Code {report['git']['commit']}"
        + (f" + uncommitted {', '.join(report['git']['dirty'])}" if report["git"]["dirty"] else "")
        + ". In-process, instrumented (timers add ~1 %); exclusive seconds, largest first."
    )
    for key, title in [
        ("full", "(a) first load into an empty land.parcels"),
        ("forced", "(b) forced re-run of the unchanged delivery"),
        ("skip", "(c) skip by checksum (in-process: no interpreter start-up)"),
    ]:
        run = report["runs"].get(key)
        if not run:
            continue
        lines += [
            "",
            f"## {title}: {run['seconds']:.2f} s, peak RSS {run.get('max_rss_mib', 0):,} MiB",
            "",
            f"status {run['status']}, read {run['rows_read']:,}, {run['counts']}, "
            f"rejected {run['rejected']}, repaired {run['repaired']}",
            "",
            "| section | s | share | calls |",
            "|---|---:|---:|---:|",
        ]
        for r in run["sections"]:
            if r["seconds"] < 0.005 and not r["section"].startswith("unaccounted"):
                continue
            lines.append(
                f"| {r['section']} | {r['seconds']:.2f} | {r['share']:.1%} | {r.get('calls', '')} |"
            )
    exp = report.get("experiments", {})
    if "python" in exp:
        lines += ["", f"## Python steps on all {exp['python']['rows']:,} rows (s)", ""]
        lines += ["| step | s |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in exp["python"]["seconds"].items()]
    if "sql" in exp:
        s = exp["sql"]
        lines += ["", f"## SQL on the {s['staged_rows']:,} staged rows (s)", ""]
        lines += [
            "| INSERT … SELECT into a copy of land.parcels (best of 2) | s |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.2f} |" for k, v in s["insert_1M"].items()]
        lines += ["", "| index built after the load | s |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in s.get("index_build", {}).items()]
        lines += ["", "| expression over all staged rows | s |", "|---|---:|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in s["expressions_1M"].items()]
        lines += ["", "| COPY of the staged rows | s or MiB |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in s["copy_1M"].items()]
        lines += [
            "",
            "| merge INSERT … NOT EXISTS, target empty *and analysed* | s | "
            "with enable_nestloop = off |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {v['seconds']:.2f} | {v.get('seconds_enable_nestloop_off', 0):.2f} |"
            for k, v in s["analysed_empty_target"].items()
        ]
        first = next(iter(s["analysed_empty_target"].values()), None)
        if first:
            lines += ["", "Plan:", "", "```", first["plan"], "```"]
    if report.get("py_spy", {}).get("top"):
        lines += ["", "## py-spy (forced re-run, child process): self time by frame", ""]
        lines += ["| frame | share |", "|---|---:|"]
        lines += [f"| `{name}` | {share:.1%} |" for name, share in report["py_spy"]["top"]]
    return "\n".join(lines) + "\n"


def _rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench etl_profile", description=__doc__)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--no-experiments", action="store_true")
    parser.add_argument("--py-spy", action="store_true", help="also sample a forced re-run")
    parser.add_argument("--database-url", help="an existing PostGIS instead of sdi_bench")
    args = parser.parse_args(argv)

    from sdi.settings import get_settings

    begin = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    data_dir = sample_data(args.parcels)
    url = bench_database(args.database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCRATCH}")
    report: dict[str, Any] = {"started_at": started_at, "git": git_state(), "runs": {}}

    def save() -> str:
        report["total_seconds"] = round(time.perf_counter() - begin, 1)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "etl_profile.json").write_text(
            json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"
        )
        text = markdown(report)
        (RESULTS / "etl_profile.md").write_text(text, encoding="utf-8")
        return text

    with tempfile.TemporaryDirectory(prefix="sdi-bench-jobs.") as jobs:
        job_path = write_job(Path(jobs))
        settings = get_settings().model_copy(
            update={"source_dir": data_dir, "jobs_dir": Path(jobs), "database_url": url}
        )
        for key, force in (("full", False), ("forced", True), ("skip", False)):
            pause(url)
            if key == "full":
                reset_target(url)  # after the ANALYZE: see _quadratic
                _drop_capture(url)  # (a leftover of an earlier run)
            say(f"profiling ({key}) …")
            run = instrumented_run(job_path, settings, url, force=force, capture=key == "full")
            if key == "full":
                _capture_loaded(url)
            run["max_rss_mib"] = _rss_mib()
            run["db_run"] = last_run(url)
            report["runs"][key] = run
            report["rows"] = report["runs"]["full"]["rows_read"]
            save()
            say(f"({key}) {run['status']} in {run['seconds']:.2f} s")
        if not args.no_experiments:
            report["experiments"] = {}
            say("python experiments …")
            report["experiments"]["python"] = python_experiments(
                parcels_gpkg(data_dir), job_path, settings
            )
            save()
            say("sql experiments …")
            report["experiments"]["sql"] = sql_experiments(url)
            save()
        if args.py_spy:
            say("py-spy …")
            report["py_spy"] = py_spy(sdi_env(url, data_dir, Path(jobs)), url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE")
    reset_target(url)
    print(save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
