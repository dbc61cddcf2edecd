"""What ``sdi etl run --changed`` costs when nothing changed (issue 12: under 1 s for 50 jobs).

Sets up ``--jobs N`` (default 50) jobs, each with a small GeoPackage of street lamps in an
inbox of its own, in a database of its own (``sdi_bench_changed`` on the local cluster, or
``--database-url``); loads them once; then measures, with nothing changed:

- ``changed_jobs()`` in-process (the decision alone: spec hashes, stat calls, one query);
- the whole command ``sdi etl run --changed`` as the systemd timer runs it (a new Python
  process: interpreter start, imports, the decision, nothing loaded);
- the same command after one delivery changed (that job loads, the others do not).

Results: ``bench/results/etl_changed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import RESULTS, bench_database, reset_target, say, sdi_env, timed

DB = "sdi_bench_changed"


def _database(url: str | None) -> str:
    url = bench_database(url, DB)
    reset_target(url, "utility.street_lamps")
    return url


def _jobs(folder: Path, n: int) -> None:
    from tests.support.deliveries import lamp_spec, lamps, write

    (folder / "jobs").mkdir(parents=True)
    for i in range(n):
        write(lamps(3, prefix=f"B{i:03d}-"), folder / "inbox" / "utility" / f"lamps_{i}.gpkg")
        spec = lamp_spec(f"utility/lamps_{i}.gpkg").replace(
            "target:\n  table: utility.street_lamps",
            "target:\n  table: utility.street_lamps\n  mode: replace_slice\n  slice: lamp_code",
        )
        (folder / "jobs" / f"lamps_{i}.yml").write_text(spec, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench etl_changed", description=__doc__)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    url = _database(args.database_url)
    with tempfile.TemporaryDirectory(prefix="sdi-bench-changed-") as tmp:
        folder = Path(tmp)
        _jobs(folder, args.jobs)
        env = sdi_env(url, folder / "inbox", folder / "jobs")
        env["SDI_STATE_DIR"] = str(folder / "state")
        command = [sys.executable, "-m", "sdi", "etl", "run", "--changed"]
        say(f"first load of {args.jobs} jobs")
        first = timed(command, env)
        assert first.returncode == 0, first.stderr[-2000:]

        from sdi.etl.inbox import changed_jobs
        from sdi.settings import Settings

        settings = Settings(
            _env_file=None,
            database_url=url,
            source_dir=folder / "inbox",
            jobs_dir=folder / "jobs",
            state_dir=folder / "state",
        )
        decide = []
        with psycopg.connect(url) as conn:
            for _ in range(args.repeat):
                start = time.perf_counter()
                pending = changed_jobs(conn, settings)
                decide.append(time.perf_counter() - start)
        assert not any(p.run for p in pending), [p for p in pending if p.run]
        say(f"changed_jobs(): median {statistics.median(decide) * 1000:.1f} ms")

        # the floor: the interpreter alone; and what any `sdi` command costs before it does
        # anything (imports). Wall and CPU seconds: on a loaded host the wall clock mostly
        # counts the wait for a CPU.
        bare = [timed([sys.executable, "-c", "pass"], env) for _ in range(args.repeat)]
        say(f"`python -c pass`: median {statistics.median(t.seconds for t in bare):.2f} s")
        imports = [timed([sys.executable, "-c", "import sdi.cli"], env)
                   for _ in range(args.repeat)]  # fmt: skip
        say(f"`import sdi.cli` alone: median {statistics.median(t.seconds for t in imports):.2f} s")
        runs = []
        for _ in range(args.repeat):
            run = timed(command, env)
            assert run.returncode == 0, run.stderr[-2000:]
            runs.append(run)
        nothing = [r.seconds for r in runs]
        nothing_cpu = [r.cpu_seconds for r in runs]
        say(
            f"`sdi etl run --changed`, nothing changed: median {statistics.median(nothing):.2f} s "
            f"({statistics.median(nothing_cpu):.2f} CPU-s)"
        )

        from tests.support.deliveries import lamps, write

        path = folder / "inbox" / "utility" / "lamps_7.gpkg"
        path.unlink()
        write(lamps(4, prefix="B007-"), path)
        one = timed(command, env)
        assert one.returncode == 0, one.stderr[-2000:]
        say(f"`sdi etl run --changed`, one delivery changed: {one.seconds:.2f} s")
    result = {
        "jobs": args.jobs,
        "changed_jobs_s": decide,
        "command_nothing_changed_s": nothing,
        "command_nothing_changed_cpu_s": nothing_cpu,
        "command_one_changed_s": one.seconds,
        "python_pass_s": [t.seconds for t in bare],
        "python_pass_cpu_s": [t.cpu_seconds for t in bare],
        "import_sdi_cli_s": [t.seconds for t in imports],
        "import_sdi_cli_cpu_s": [t.cpu_seconds for t in imports],
        "load_average": os.getloadavg()[0],
        "first_load_s": first.seconds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "etl_changed.json").write_text(json.dumps(result, indent=2))
    med = statistics.median
    (RESULTS / "etl_changed.md").write_text(
        f"| {args.jobs} jobs, nothing changed (median of {args.repeat}) | wall | CPU |\n"
        "|---|---|---|\n"
        f"| `changed_jobs()` (the decision, in process) | {med(decide) * 1000:.1f} ms | |\n"
        f"| `sdi etl run --changed` (whole command) | {med(nothing):.2f} s | "
        f"{med(nothing_cpu):.2f} s |\n"
        f"| … with one delivery changed | {one.seconds:.2f} s | {one.cpu_seconds:.2f} s |\n"
        f"| `python -c 'import sdi.cli'` (start-up of any command) | "
        f"{med(t.seconds for t in imports):.2f} s | {med(t.cpu_seconds for t in imports):.2f} s |\n"
        f"| `python -c pass` (the interpreter alone) | {med(t.seconds for t in bare):.2f} s | "
        f"{med(t.cpu_seconds for t in bare):.2f} s |\n"
        f"\nLoad average at the end: {os.getloadavg()[0]:.1f} (2 CPUs)\n"
    )
    print((RESULTS / "etl_changed.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
