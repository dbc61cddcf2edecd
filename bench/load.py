"""Load: mixed anonymous readers, quiet and while the exposure process is flooded (issue 13).

``./dev bench load [--url URL] [--readers 50] [--flooders 16] [--duration 60]`` against a
running service (``./dev up``; default ``SDI_PUBLIC_URL`` or http://SDI_HOST:SDI_PORT):

1. **quiet**: ``--readers`` clients, each from its own loopback address (127.0.2.N, so the
   per-address rate limit sees distinct clients, as in service), loop over a mix of anonymous
   reads: bbox pages of 100 features on dense boxes, single items, collection documents, the
   landing page, conformance, a vector tile; one more client asks ``/healthz`` every 0.2 s.
2. **flood**: the same, while ``--flooders`` clients (127.0.3.N) post the largest exposure
   request the service accepts (a polygon of ``SDI_PROCESS_MAX_VERTICES`` − 1 vertices) in a
   loop, each starting again as soon as it has an answer (429s included: the worst case).
   They run in a process of their own, so that the client work of sending them does not
   count in the readers' latencies (one event loop for both measured its own load: read p99
   2.07x quiet with the flooders in the readers' loop, 1.73x with them apart, docs/jobs.md).

Each phase runs ``--warmup`` seconds (default 10) before it measures: the first seconds of 51
clients connecting at once to freshly started clients are a connection storm, not the
service's steady state (measured: one /healthz of 9.6 s at t=0.2 s, then at most 0.44 s).

``--quiet-only`` runs the first phase alone, ``--label L`` writes ``load-L.json``/``.md`` (to
keep two runs apart, e.g. the read path's cost of the shared rate limits: run it against a
server with ``SDI_RATE_LIMIT_ANONYMOUS=0`` and one with the default). Each phase also reports
how many requests the rate limits counted in ``auth.rate_counts`` and the claims (round trips)
that took, estimated as counted requests / batch.

Reported per phase: requests, errors (any read answer but 200; 429 counted apart), 5xx
anywhere, p50/p95/p99 of reads and of ``/healthz``, flood answers by status. The criteria
(issue 13): quiet 0 errors and ``/healthz`` p99 < 1 s; flood: reads 0 errors, read p99 within
2x of the quiet run, 0 5xx. Results: ``bench/results/load.json`` and ``load.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import httpx

from bench.common import RESULTS, say
from sdi.settings import get_settings

DENSE = [(107.07, 20.95), (106.78, 21.03), (107.29, 21.01), (107.97, 21.53)]  # 4 city centres


@dataclass
class Phase:
    name: str
    reads: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    health_statuses: Counter = field(default_factory=Counter)
    flood: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        errors = sum(n for s, n in self.statuses.items() if s != 200)
        five = sum(n for s, n in self.statuses.items() if s >= 500) + sum(
            n for s, n in self.flood.items() if isinstance(s, int) and s >= 500
        )
        return {
            "phase": self.name,
            "reads": len(self.reads),
            "read_errors": errors,
            "read_429": self.statuses.get(429, 0),
            "5xx": five + sum(n for s, n in self.health_statuses.items() if s >= 500),
            "read_p50_ms": _pct(self.reads, 50),
            "read_p95_ms": _pct(self.reads, 95),
            "read_p99_ms": _pct(self.reads, 99),
            "health_n": len(self.health),
            "health_p99_ms": _pct(self.health, 99),
            "health_max_ms": round(max(self.health) * 1000, 1) if self.health else None,
            "flood": {str(k): v for k, v in sorted(self.flood.items(), key=str)},
            "failures": dict(self.failures),
        }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)] * 1000, 1)


async def _targets(url: str) -> list[str]:
    """The read mix: paths on the public collections (discovered, never guessed)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        listed = (await client.get("/collections", params={"f": "json"})).json()
        ids = [c["id"] for c in listed["collections"]]
        paths = ["/", "/conformance?f=json", "/collections?f=json"]
        for cid in [c for c in ("parcels", "buildings", "street_lamps") if c in ids] or ids[:3]:
            paths.append(f"/collections/{cid}?f=json")
            for lon, lat in DENSE:
                box = f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"
                paths.append(f"/collections/{cid}/items?f=json&limit=100&bbox={box}")
            page = (await client.get(f"/collections/{cid}/items", params={"limit": 5})).json()
            paths += [f"/collections/{cid}/items/{f['id']}?f=json" for f in page["features"]]
        if "parcels" in ids:
            lon, lat = DENSE[0]
            n = 2**15
            x = int((lon + 180) / 360 * n)
            y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
            paths.append(f"/collections/parcels/tiles/WebMercatorQuad/15/{y}/{x}?f=mvt")
    return paths


async def _reader(
    i: int, url: str, paths: list[str], phase: Phase, stop: float, measure_from: float
) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.2.{i + 1}")
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as client:
        rng = random.Random(i)
        while time.monotonic() < stop:
            path = rng.choice(paths)
            started = time.monotonic()
            try:
                response = await client.get(path)
                status = response.status_code
                if status == 204 and "/tiles/" in path:
                    status = 200  # an empty tile is an answer
            except httpx.HTTPError as exc:
                phase.failures[type(exc).__name__] += 1
                status = 0
            if started >= measure_from:
                phase.reads.append(time.monotonic() - started)
                phase.statuses[status] += 1


async def _health(url: str, phase: Phase, stop: float, measure_from: float) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                status = (await client.get("/healthz")).status_code
            except httpx.HTTPError:
                status = 0
            if started >= measure_from:
                phase.health.append(time.monotonic() - started)
                phase.health_statuses[status] += 1
            await asyncio.sleep(0.2)


def _polygon(vertices: int) -> dict:
    lon, lat, r = 107.08, 20.96, 0.06
    ring = [
        [
            round(lon + r * math.cos(2 * math.pi * k / vertices), 7),
            round(lat + r * math.sin(2 * math.pi * k / vertices), 7),
        ]
        for k in range(vertices)
    ]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


async def _flooder(
    i: int, url: str, body: bytes, phase: Phase, stop: float, measure_from: float
) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.3.{i + 1}")
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=120) as client:
        while time.monotonic() < stop:
            try:
                response = await client.post(
                    "/processes/exposure/execution",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                answer: int | str = response.status_code
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            if time.monotonic() >= measure_from:
                phase.flood[answer] += 1


def _flood(url: str, flooders: int, stop: float, measure_from: float, answers: Connection) -> None:
    """The flooders, in a process of their own: sending 16 bodies of half a megabyte in a loop
    takes a client event loop's time, which the readers' latencies would otherwise count
    (time.monotonic is one clock for every process on Linux)."""
    body = json.dumps({"inputs": {"area": _polygon(get_settings().process_max_vertices - 1)}})
    phase = Phase("flood")

    async def flood() -> None:
        await asyncio.gather(
            *(_flooder(i, url, body.encode(), phase, stop, measure_from) for i in range(flooders))
        )

    asyncio.run(flood())
    answers.send(dict(phase.flood))


async def _run(
    url: str, name: str, readers: int, flooders: int, duration: float, warmup: float
) -> Phase:
    paths = await _targets(url)
    phase = Phase(name)
    measure_from = time.monotonic() + warmup
    stop = measure_from + duration
    flood = None
    if flooders:
        receive, send = multiprocessing.Pipe(duplex=False)
        flood = multiprocessing.get_context("spawn").Process(
            target=_flood, args=(url, flooders, stop, measure_from, send), name="flooders"
        )
        flood.start()
    tasks = [_reader(i, url, paths, phase, stop, measure_from) for i in range(readers)]
    await asyncio.gather(_health(url, phase, stop, measure_from), *tasks)
    if flood is not None:
        phase.flood.update(await asyncio.to_thread(receive.recv))
        flood.join()
    return phase


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="bench load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=settings.server_url)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument(
        "--warmup", type=float, default=10.0, help="seconds run before measuring (connections)"
    )
    parser.add_argument("--quiet-only", action="store_true", help="only the first phase")
    parser.add_argument("--label", help="results in load-LABEL.json / .md")
    args = parser.parse_args(argv)
    results = []
    phases = [("quiet", 0)] + ([] if args.quiet_only else [("flood", args.flooders)])
    for name, flooders in phases:
        say(f"{name}: {args.readers} readers, {flooders} flooders, {args.duration:g} s")
        phase = asyncio.run(
            _run(args.url, name, args.readers, flooders, args.duration, args.warmup)
        )
        results.append(phase.summary())
        say(json.dumps(results[-1]))
    quiet = results[0]
    flood = results[-1] if not args.quiet_only else quiet
    verdict = {
        "quiet: 0 read errors": quiet["read_errors"] == 0,
        "quiet: /healthz p99 < 1 s": (quiet["health_p99_ms"] or 1e9) < 1000,
        "flood: 0 read errors": flood["read_errors"] == 0,
        "flood: read p99 within 2x quiet": (flood["read_p99_ms"] or 1e9)
        <= 2 * (quiet["read_p99_ms"] or 0),
        "flood: /healthz p99 < 1 s": (flood["health_p99_ms"] or 1e9) < 1000,
        "0 5xx anywhere": quiet["5xx"] == 0 and flood["5xx"] == 0,
    }
    if args.quiet_only:
        verdict = {k: v for k, v in verdict.items() if k.startswith("quiet") or "5xx" in k}
    stem = f"load-{args.label}" if args.label else "load"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"args": vars(args), "phases": results, "verdict": verdict}, indent=2)
    )
    lines = [
        "| phase | reads | errors (429) | 5xx | read p50 / p95 / p99 ms | /healthz p99 / max ms "
        "| flood answers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['phase']} | {r['reads']} | {r['read_errors']} ({r['read_429']}) | {r['5xx']} "
            f"| {r['read_p50_ms']} / {r['read_p95_ms']} / {r['read_p99_ms']} "
            f"| {r['health_p99_ms']} / {r['health_max_ms']} | {r['flood'] or '-'} |"
        )
    lines += ["", *[f"- {'PASS' if ok else 'FAIL'}: {what}" for what, ok in verdict.items()]]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
