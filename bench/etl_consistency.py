"""Readers during an ETL run: every page consistent, old state or new, never mixed (issue 13).

``./dev bench etl_consistency [--features 20000] [--readers 20] [--rounds 3] [--limit 100]``

Sets up a database of its own (``sdi_bench_consistency`` on the local cluster, or
``--database-url``) with ``--features`` street lamps (a job of its own, ``bench_lamps``,
history mode), loads them, and starts an OGC API server on it (``sdi serve``, rate limits
off: the readers share one address). Then ``--readers`` clients page through
``/collections/lamps/items`` (``limit`` features on the first page, following the ``next``
links — whose pages hold 1,000, the provider's next-page size — over and over) while
``--rounds`` ETL runs (``sdi etl run bench_lamps`` in a process of its own) each change 10 %
of the lamps.

The marker: the changed lamps are every tenth one, and round *k* sets their ``status`` to
``r<k>-<token>`` (``token``: random per bench run), so each changed lamp on a page shows its
generation — the original status (0) or round *k*. A page is **consistent** when all the
changed lamps on it show the same generation, **mixed** otherwise (a page that shows part
of a run's changes: a merge committed in pieces, or a read spanning two snapshots). Pages
without a changed lamp are counted apart. Any answer but 200, or a transport error, is an
error. Criteria (issue 13): 0 mixed pages, 0 errors.

Results: ``bench/results/etl_consistency.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.common import RESULTS, bench_database, reset_target, say, sdi_env

DB = "sdi_bench_consistency"
JOB = "bench_lamps"


def _database(url: str | None) -> str:
    url = bench_database(url, DB)
    reset_target(url, "utility.street_lamps")
    return url


def _lamps(n: int, round_: int, token: str):  # -> GeoDataFrame
    """``n`` lamps on a 30 m grid; every tenth has status ``r<round>-<token>`` after round 0."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    from tests.support.deliveries import LAT, LON, SRID

    x0, y0 = Transformer.from_crs("EPSG:4326", f"EPSG:{SRID}", always_xy=True).transform(LON, LAT)
    status = [
        (f"r{round_}-{token}" if round_ and i % 10 == 0 else ("on" if i % 4 else "off"))
        for i in range(n)
    ]
    return gpd.GeoDataFrame(
        {
            "lamp_id": [f"C{i:06d}" for i in range(n)],
            "commune_code": ["06685"] * n,
            "road_name": ["Đường Trần Hưng Đạo"] * n,
            "status": status,
            "power_w": [100 + 50 * (i % 3) for i in range(n)],
        },
        geometry=[
            shapely.Point(round(x0 + 30 * (i % 200), 3), round(y0 + 30 * (i // 200), 3))
            for i in range(n)
        ],
        crs=f"EPSG:{SRID}",
    )


def _deliver(folder: Path, n: int, round_: int, token: str) -> None:
    from tests.support.deliveries import write

    path = folder / "inbox" / "utility" / "bench_lamps.gpkg"
    path.unlink(missing_ok=True)
    write(_lamps(n, round_, token), path)


def _generation(status: str, token: str) -> int:
    """0 for an original status, k for round k's marker."""
    if status.startswith("r") and status.endswith(f"-{token}"):
        return int(status[1:].split("-", 1)[0])
    return 0


class Readers:
    """``n`` threads paging through the layer until stopped; pages classified as they come."""

    def __init__(self, base: str, n: int, limit: int, token: str) -> None:
        self.base, self.n, self.limit, self.token = base, n, limit, token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pages: Counter = Counter()  # consistent / mixed / unchanged
        self.errors: Counter = Counter()
        self.generations: Counter = Counter()  # generation of the consistent pages
        self.walks = 0
        self.features = 0
        self.examples: list[dict] = []
        self.threads = [threading.Thread(target=self._read, daemon=True) for _ in range(n)]

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _read(self) -> None:
        first = f"{self.base}/collections/lamps/items?f=json&limit={self.limit}"
        with httpx.Client(timeout=30) as client:
            url: str | None = first
            while not self.stop.is_set():
                try:
                    response = client.get(url or first)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors[type(exc).__name__] += 1
                    url = None
                    continue
                if response.status_code != 200:
                    with self.lock:
                        self.errors[response.status_code] += 1
                    url = None
                    continue
                page = response.json()
                self._classify(page["features"])
                url = next((k["href"] for k in page.get("links", []) if k["rel"] == "next"), None)
                if url is None:
                    with self.lock:
                        self.walks += 1

    def _classify(self, features: list[dict]) -> None:
        seen = {
            _generation(f["properties"]["status"], self.token)
            for f in features
            if int(f["properties"]["lamp_code"][1:]) % 10 == 0
        }
        with self.lock:
            self.features += len(features)
            if not seen:
                self.pages["unchanged"] += 1
            elif len(seen) == 1:
                self.pages["consistent"] += 1
                self.generations[seen.pop()] += 1
            else:
                self.pages["mixed"] += 1
                if len(self.examples) < 5:
                    self.examples.append({"generations": sorted(seen)})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench etl_consistency", description=__doc__)
    parser.add_argument("--features", type=int, default=20000)
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    url = _database(args.database_url)
    token = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="sdi-bench-consistency-") as tmp:
        folder = Path(tmp)
        from tests.support.deliveries import lamp_spec

        (folder / "jobs").mkdir()
        (folder / "jobs" / f"{JOB}.yml").write_text(
            lamp_spec("utility/bench_lamps.gpkg", name=JOB), encoding="utf-8"
        )
        env = sdi_env(url, folder / "inbox", folder / "jobs")
        env.update(
            SDI_STATE_DIR=str(folder / "state"),
            SDI_PORT=str(_free_port()),
            SDI_RATE_LIMIT_ANONYMOUS="0",
            SDI_SERVE_WORKER="false",
        )
        etl = [sys.executable, "-m", "sdi", "etl", "run", JOB, "--force"]
        _deliver(folder, args.features, 0, token)
        first = subprocess.run(etl, env=env, capture_output=True, text=True, check=False)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        say(f"loaded {args.features} lamps; starting the server")
        serve = [sys.executable, "-m", "sdi", "serve", "start"]
        started = subprocess.run(serve, env=env, capture_output=True, text=True, check=False)
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        base = f"http://127.0.0.1:{env['SDI_PORT']}"
        runs = []
        try:
            with Readers(base, args.readers, args.limit, token) as readers:
                time.sleep(3)
                for round_ in range(1, args.rounds + 1):
                    _deliver(folder, args.features, round_, token)
                    began = time.monotonic()
                    run = subprocess.run(etl, env=env, capture_output=True, text=True, check=False)
                    runs.append(
                        {"round": round_, "seconds": round(time.monotonic() - began, 2),
                         "exit": run.returncode, "output": run.stdout.strip()[-300:]}
                    )  # fmt: skip
                    say(f"round {round_}: run of {runs[-1]['seconds']} s, exit {run.returncode}")
                    time.sleep(2)
        finally:
            subprocess.run(
                [sys.executable, "-m", "sdi", "serve", "stop"], env=env, capture_output=True
            )
    result = {
        "features": args.features,
        "changed_per_run": args.features // 10,
        "readers": args.readers,
        "page_size": args.limit,
        "runs": runs,
        "pages": sum(readers.pages.values()),
        "features_read": readers.features,
        "pages_consistent": readers.pages["consistent"],
        "pages_mixed": readers.pages["mixed"],
        "pages_without_changed_lamp": readers.pages["unchanged"],
        "pages_by_generation": {str(k): v for k, v in sorted(readers.generations.items())},
        "walks_completed": readers.walks,
        "errors": dict(readers.errors),
        "mixed_examples": readers.examples,
        "load_average": os.getloadavg()[0],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "etl_consistency.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "etl_consistency.md").write_text(
        f"| {args.readers} readers, {args.rounds} ETL runs changing 10 % of "
        f"{args.features} lamps | |\n|---|---|\n"
        f"| pages read (features) | {result['pages']} ({readers.features}) |\n"
        f"| consistent pages (by generation: {result['pages_by_generation']}) | "
        f"{result['pages_consistent']} |\n"
        f"| **mixed pages** | **{result['pages_mixed']}** |\n"
        f"| pages without a changed lamp | {result['pages_without_changed_lamp']} |\n"
        f"| complete walks through the layer | {result['walks_completed']} |\n"
        f"| **errors** | **{sum(readers.errors.values())}** {dict(readers.errors) or ''} |\n"
        f"| ETL runs (s) | {', '.join(str(r['seconds']) for r in runs)} |\n"
        f"\nLoad average at the end: {os.getloadavg()[0]:.1f} (2 CPUs)\n"
    )
    print((RESULTS / "etl_consistency.md").read_text())
    ok = result["pages_mixed"] == 0 and not readers.errors and all(r["exit"] == 0 for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
