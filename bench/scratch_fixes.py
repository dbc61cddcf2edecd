"""Quick A/B measurements of candidate fixes, in scratch code (sdi/ is not edited).

    .venv/bin/python -m bench.scratch_fixes [--parcels N] [--no-runs]

On the same 1 M parcels as the other benchmarks:

1. Python steps, current vs candidate (same inputs, results checked equal):
   hex EWKB (shapely hex writer vs binary WKB + a numpy hex table), the duplicate-key check
   (current ``FirstSeen`` vs a set-based one), the reprojection (one thread vs two: pyproj
   releases the GIL), a client-side row hash (``pandas.util.hash_pandas_object``) vs
   ``hashlib.md5`` per row, and reading the current (natural_key, row_hash) pairs back.
2. Whole runs in-process, A/B: the current pipeline vs the same with ``Stage.write`` handed
   to a background thread (normalising batch n+1 while batch n is COPYed), for (a) and (b).

Writes bench/results/scratch_fixes.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from bench.common import (
    RESULTS,
    bench_database,
    parcels_gpkg,
    pause,
    reset_target,
    sample_data,
    say,
    write_job,
)

_HEX = np.array([f"{i:02X}".encode() for i in range(256)], dtype="S2").view(np.uint16)


def hex_wkb(geometry: np.ndarray) -> pa.Array:
    """Hex EWKB as an Arrow string array: binary WKB, hex-encoded by one numpy table lookup."""
    import shapely

    blobs = shapely.to_wkb(geometry, include_srid=True)
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    text = _HEX[np.frombuffer(b"".join(blobs), dtype=np.uint8)].tobytes()
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(lengths * 2, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.large_string(), len(blobs), [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )


class SetFirstSeen:
    """Duplicate keys across batches with a set; first-seen rows looked up only for dups."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def check(self, keys: pd.Series, ok: np.ndarray) -> np.ndarray:
        values = keys.to_numpy(dtype=object)
        candidates = ok & pd.notna(values)
        before = np.fromiter(map(self.seen.__contains__, values), dtype=bool, count=len(values))
        duplicate = candidates & (pd.Series(values).duplicated().to_numpy() | before)
        self.seen.update(values[candidates & ~duplicate])
        return duplicate


def transform_threads(reprojector: Any, geometry: np.ndarray, threads: int) -> np.ndarray:
    if threads == 1:
        return reprojector.to_storage(geometry)
    chunks = np.array_split(geometry, threads)
    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(reprojector.to_storage, chunks)))


def python_steps(gpkg: Path, job: Any, settings: Any) -> dict:
    import shapely

    from sdi.etl.normalise import Issues, Reprojector, natural_keys
    from sdi.etl.read import read_batches
    from sdi.etl.validate import FirstSeen

    reprojector = Reprojector(5899, settings.storage_srid, settings.province_srid)
    t: dict[str, float] = {}
    checks: dict[str, bool] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        value = fn(*args)
        t[name] = t.get(name, 0.0) + time.perf_counter() - start
        return value

    current, candidate = FirstSeen("natural key"), SetFirstSeen()
    attributes = [f.source for f in job.fields if f.source]
    rows = 0
    # The product's own reader and keys: the same frames and dtypes as in a run.
    for batch in read_batches(gpkg, job.source):
        frame = batch.frame
        geometry = batch.geometry
        one = timed(
            "transform → 4326, 1 thread (current)",
            lambda g=geometry: transform_threads(reprojector, g, 1),
        )
        two = timed(
            "transform → 4326, 2 threads",
            lambda g=geometry: transform_threads(reprojector, g, 2),
        )
        checks["transform equal"] = checks.get("transform equal", True) and bool(
            shapely.equals_exact(one, two, tolerance=0).all()
        )
        stored = shapely.set_srid(one, 4326)
        a = timed(
            "hex EWKB: shapely to_wkb(hex=True) (current)",
            lambda g=stored: shapely.to_wkb(g, hex=True, include_srid=True),
        )
        b = timed("hex EWKB: binary to_wkb + numpy hex table", hex_wkb, stored)
        checks["hex equal"] = checks.get("hex equal", True) and a.tolist() == b.to_pylist()
        keys = natural_keys(frame, job.natural_key)
        where = np.arange(rows, rows + len(frame))
        issues = Issues(len(frame))
        timed("duplicates: FirstSeen (current)", current.check, keys, where, "p", issues)
        dup = timed(
            "duplicates: set + duplicated()",
            lambda k=keys: candidate.check(k, np.ones(len(k), dtype=bool)),
        )
        checks["duplicates equal"] = checks.get("duplicates equal", True) and bool(
            (dup == ~issues.ok).all()
        )
        wkb = shapely.to_wkb(one)
        hashed = frame[attributes].assign(_wkb=wkb)
        timed(
            "row hash: pandas hash_pandas_object (64-bit, vectorised)",
            lambda h=hashed: pd.util.hash_pandas_object(h, index=False),
        )

        def md5_rows(table: pd.DataFrame = hashed) -> list[bytes]:
            return [
                hashlib.md5(repr(r).encode(), usedforsecurity=False).digest()
                for r in table.itertuples(index=False)
            ]

        timed("row hash: hashlib.md5 per row (Python loop)", md5_rows)
        rows += len(frame)
    return {
        "rows": rows,
        "seconds": {k: round(v, 3) for k, v in t.items()},
        "checks": checks,
    }


def key_match(gpkg: Path, job: Any) -> dict:
    """Matching each batch's keys against the current keys (the source-hash check): what
    ``Index.get_indexer`` costs with a Series, with an object ndarray, and on 64-bit hashes.
    A fresh index per variant, so each pays for building its hash table once."""
    from sdi.etl.normalise import natural_keys
    from sdi.etl.read import read_batches

    keys = [natural_keys(b.frame, job.natural_key) for b in read_batches(gpkg, job.source)]
    current = np.concatenate([k.to_numpy(dtype=object) for k in keys])
    out: dict[str, float] = {}

    def run(name: str, fn: Any) -> list[np.ndarray]:
        start = time.perf_counter()
        result = fn()
        out[name] = round(time.perf_counter() - start, 3)
        return result

    index = pd.Index(current)
    a = run(
        "get_indexer(Series) per batch (current code)", lambda: [index.get_indexer(k) for k in keys]
    )
    index = pd.Index(current)
    b = run(
        "get_indexer(k.to_numpy(dtype=object)) per batch",
        lambda: [index.get_indexer(k.to_numpy(dtype=object)) for k in keys],
    )

    def hashed() -> list[np.ndarray]:
        table = pd.Index(pd.util.hash_array(current))
        return [table.get_indexer(pd.util.hash_array(k.to_numpy(dtype=object))) for k in keys]

    c = run("uint64 hashes: hash_array + get_indexer (incl. hashing current)", hashed)
    same = all((x == y).all() and (x == z).all() for x, y, z in zip(a, b, c, strict=True))
    return {"rows": len(current), "seconds": out, "equal": bool(same)}


def fetch_current_hashes(url: str) -> dict:
    """What a client-side change check would read first: current keys and hashes."""
    with psycopg.connect(url) as conn:
        n = conn.execute("SELECT count(*) FROM land.parcels WHERE valid_to IS NULL").fetchone()[0]
        start = time.perf_counter()
        out = bytearray()
        with conn.cursor().copy(
            "COPY (SELECT natural_key, row_hash FROM land.parcels WHERE valid_to IS NULL) "
            "TO STDOUT (FORMAT csv)"
        ) as copy:
            for chunk in copy:
                out += chunk
        import pyarrow.csv as pa_csv

        table = pa_csv.read_csv(
            pa.py_buffer(bytes(out)),
            read_options=pa_csv.ReadOptions(column_names=["natural_key", "row_hash"]),
        )
        return {
            "rows": n,
            "seconds": round(time.perf_counter() - start, 3),
            "mib": round(len(out) / 2**20, 1),
            "parsed_rows": table.num_rows,
        }


def threaded_stage_write() -> Any:
    """Patch ``Stage.write`` to COPY in one background thread; returns an undo function."""
    from sdi.etl import stage as stage_mod

    write, finish = stage_mod.Stage.write, stage_mod.Stage.finish
    pool = ThreadPoolExecutor(1)
    pending: list[Any] = []

    def background_write(self: Any, frame: pd.DataFrame) -> None:
        pending.append(pool.submit(write, self, frame))

    def finish_after_writes(self: Any) -> None:
        for future in pending:
            future.result()
        pending.clear()
        finish(self)

    stage_mod.Stage.write = background_write
    stage_mod.Stage.finish = finish_after_writes

    def undo() -> None:
        stage_mod.Stage.write, stage_mod.Stage.finish = write, finish
        pool.shutdown()

    return undo


def whole_runs(url: str, job_path: Path, settings: Any, repeat: int) -> dict:
    """A/B, interleaved (A B A B …) so both variants see the same load; best and all."""
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job

    samples: dict[str, list[float]] = {}
    for _ in range(repeat):
        for variant in ("current", "COPY in a background thread"):
            undo = threaded_stage_write() if variant != "current" else (lambda: None)
            try:
                for key, force in (("(a) full load", False), ("(b) forced re-run", True)):
                    if not force:
                        reset_target(url)
                    pause(url)
                    start = time.perf_counter()
                    job = load_job(job_path, settings)
                    result = run_job(job, url, force=force, settings=settings)
                    seconds = time.perf_counter() - start
                    assert result.status == "succeeded", result
                    samples.setdefault(f"{key}: {variant}", []).append(round(seconds, 3))
                    say(f"{key}: {variant}: {seconds:.2f} s ({result.counts})")
            finally:
                undo()
    return {k: {"best": min(v), "samples": v} for k, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scratch_fixes", description=__doc__)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--no-runs", action="store_true", help="only the Python steps")
    parser.add_argument("--repeat", type=int, default=2, help="A/B passes (best is kept)")
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)

    from sdi.etl.spec import load_job
    from sdi.settings import get_settings

    data_dir = sample_data(args.parcels)
    url = bench_database(args.database_url)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sdi-bench-jobs.") as jobs:
        job_path = write_job(Path(jobs))
        settings = get_settings().model_copy(
            update={"source_dir": data_dir, "jobs_dir": Path(jobs), "database_url": url}
        )
        say("python steps …")
        report["python"] = python_steps(
            parcels_gpkg(data_dir), load_job(job_path, settings), settings
        )
        say(json.dumps(report["python"], ensure_ascii=False))
        report["key_match"] = key_match(parcels_gpkg(data_dir), load_job(job_path, settings))
        say(json.dumps(report["key_match"], ensure_ascii=False))
        if not args.no_runs:
            report["runs"] = whole_runs(url, job_path, settings, args.repeat)
            report["fetch_current_hashes"] = fetch_current_hashes(url)
            reset_target(url)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scratch_fixes.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Candidate fixes, measured (scratch code)", "", "| step | s |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in report["python"]["seconds"].items()]
    lines += ["", f"Checks: {report['python']['checks']}", ""]
    k = report["key_match"]
    lines += [f"| key match, {k['rows']:,} keys (results equal: {k['equal']}) | s |", "|---|---:|"]
    lines += [f"| {name} | {v:.2f} |" for name, v in k["seconds"].items()]
    lines += [""]
    if "runs" in report:
        lines += ["| whole run (in-process, A/B interleaved) | best s | samples |"]
        lines += ["|---|---:|---|"]
        lines += [
            f"| {k} | {v['best']:.2f} | {', '.join(f'{x:.2f}' for x in v['samples'])} |"
            for k, v in report["runs"].items()
        ]
        f = report["fetch_current_hashes"]
        lines += [
            "",
            f"Reading the {f['rows']:,} current (natural_key, row_hash) pairs with COPY and "
            f"parsing them with Arrow: {f['seconds']:.2f} s ({f['mib']} MiB).",
        ]
    text = "\n".join(lines) + "\n"
    (RESULTS / "scratch_fixes.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
