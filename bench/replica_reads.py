"""Reads under load touch only the replicas: CPU of the primary vs the replica, measured.

The bench database of ``api_vs_tipg`` (``sdi_bench_api``, 1 M parcels, loaded by our ETL) on
the project's local cluster, a hot standby of that cluster (``sdi db replica add``, removed at
the end unless it was there before), and ``sdi serve`` (one instance, 2 workers) reading from
it through ``SDI_READ_DATABASE_URLS``. A read load (``wrk``: dense 0.002° bboxes with
``limit=100`` and items by id, in turn) runs for ``--duration`` seconds; before and after it
the CPU time of each cluster's processes is read from ``/proc/<pid>/stat`` (the postmaster's
own and reaped children's time, plus every live child's: backends, walsender, walreceiver,
startup/replay), and, as a cross-check, ``xact_commit`` of the bench database in
``pg_stat_database`` on each.

Goal (issue 14): the primary's CPU under 10 % of the read load's (the replica's) CPU.

``python -m bench replica_reads [--parcels N] [--duration S] [--connections C]``; results
in ``bench/results/replica_reads.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from bench.api_vs_tipg import Server, database, inputs, start_ours, wrk
from bench.common import RESULTS, git_state
from sdi.db import LocalCluster
from sdi.db.replica import Replica, add, remove, replicas, with_port
from sdi.settings import Settings

REPLICA = "bench"
GOAL = 0.10
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(postmaster: int) -> float:
    """CPU time of a postmaster and all its processes, those gone included (reaped children's
    time is added to the postmaster's cutime/cstime)."""

    def stat(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()

    fields = stat(postmaster)
    # after the ")": state ppid … utime(11) stime(12) cutime(13) cstime(14)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = stat(int(entry.name))
        except (OSError, IndexError):
            continue
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / TICKS


def commits(url: str) -> int:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def start_server(url: str, read_url: str, workdir: Path) -> Server:
    return start_ours(url, workdir, SDI_READ_DATABASE_URLS=read_url)


def markdown(report: dict) -> str:
    p, r = report["primary"], report["replica"]
    ratio = report["ratio"]
    return "\n".join(
        [
            f"# Reads under load: primary vs replica CPU ({report['started_at']})",
            "",
            f"{report['data']['parcels']:,} parcels; `sdi serve` (1 instance, 2 workers) reading "
            f"from one local hot standby; wrk, 1 thread, {report['connections']} connections, "
            f"{report['duration']:g} s of dense 0.002° bboxes (limit=100) and items by id; "
            f"{report['requests']:,} requests ({report['rps']:,.0f}/s, "
            f"{report['errors']} errors); code {report['git']['commit']}.",
            "",
            "| cluster | CPU s during the load | transactions (bench db) |",
            "|---|---:|---:|",
            f"| primary | {p['cpu_s']:.2f} | {p['commits']:,} |",
            f"| replica | {r['cpu_s']:.2f} | {r['commits']:,} |",
            "",
            "| goal | measured | target | met |",
            "|---|---:|---:|---|",
            f"| primary CPU ÷ replica CPU | {ratio:.1%} | < {GOAL:.0%} | "
            f"{'yes' if ratio < GOAL else '**no**'} |",
            "",
            "The primary's remainder: each API worker's replica monitor samples its WAL "
            "position (a few statements a second), its walsender, and its own background "
            "processes (checkpointer, autovacuum launcher, stats).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench replica_reads", description=__doc__)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    url = database(args.parcels)
    data = inputs(url)
    primary = LocalCluster(Settings(database_url=None))
    existing = {r.name: r for r in replicas(primary)}
    made = REPLICA not in existing
    replica: Replica = existing.get(REPLICA) or add(primary.settings, REPLICA)
    if not replica.is_running():
        replica.start()
    server = None
    try:
        replica_db = with_port(url, replica.port)
        workdir = Path(tempfile.mkdtemp(prefix="sdi-bench-replica."))
        from sdi.db.roles import prepare

        # The API role of the bench database (created and granted now), on the replica.
        api_url = prepare(Settings(database_url=url, state_dir=workdir / "state"))
        server = start_server(url, with_port(api_url, replica.port), workdir)
        dense = [",".join(f"{v:.6f}" for v in box) for box in data["dense_bboxes"]]
        paths = [server.items(bbox=b, limit=100) for b in dense]
        paths += [server.item(i) for i in data["ids"][:16]]
        with httpx.Client(base_url=server.base, timeout=60) as client:
            for path in paths:
                assert client.get(path).status_code == 200, path
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # the replica is in use by every worker
                health = client.get("/healthz").json()
                if health.get("replicas", {}).get("r1", {}).get("state") == "ok":
                    break
                time.sleep(0.5)
        wrk(server.base, paths, 2.0, args.connections)  # warm-up
        before = (
            cpu_seconds(primary._postmaster_pid() or 0),
            cpu_seconds(replica._postmaster_pid() or 0),
            commits(url),
            commits(replica_db),
        )
        result = wrk(server.base, paths, args.duration, args.connections)
        after = (
            cpu_seconds(primary._postmaster_pid() or 0),
            cpu_seconds(replica._postmaster_pid() or 0),
            commits(url),
            commits(replica_db),
        )
    finally:
        if server is not None:
            server.stop()
        if made:
            remove(primary.settings, REPLICA)
    primary_cpu, replica_cpu = after[0] - before[0], after[1] - before[1]
    report = {
        "started_at": started_at,
        "duration": args.duration,
        "connections": args.connections,
        "data": {"parcels": data["parcels"], "dense_counts": data["dense_counts"]},
        "requests": result["requests"],
        "rps": result["rps"],
        "errors": result["errors"] + result["non_2xx"],
        "primary": {"cpu_s": primary_cpu, "commits": after[2] - before[2]},
        "replica": {"cpu_s": replica_cpu, "commits": after[3] - before[3]},
        "ratio": primary_cpu / replica_cpu if replica_cpu else float("inf"),
        "git": git_state(),
    }
    out = RESULTS / "replica_reads"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0 if report["ratio"] < GOAL and not report["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
