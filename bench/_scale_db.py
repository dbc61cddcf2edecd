"""Shared by the benchmarks that load the derived layers' inputs at a given scale
(bench/planning.py, bench/warnings.py): a migrated database per scale, the input jobs pointed
at the one parcels GeoPackage, and their runs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import yaml

from bench.common import PROJECT

if TYPE_CHECKING:
    from sdi.etl.runner import RunResult


def scale_database(bench: str, parcels: int, url: str | None) -> str:
    """URL of the migrated database: ``url``, or ``sdi_bench_<bench>_<parcels>`` on the local
    cluster (one per scale, so a rerun finds its inputs loaded and skips them)."""
    from sdi.db import LocalCluster
    from sdi.db.migrate import upgrade

    if url is None:
        cluster = LocalCluster()
        cluster.start()
        name = f"sdi_bench_{bench}_{parcels}"
        cluster.ensure_database(name)
        url = cluster.url(name)
    upgrade(url)
    return url


def input_jobs_dir(work: Path, names: Iterable[str]) -> Path:
    """The jobs ``names`` as in etl/jobs/, with the parcels read from the one GeoPackage
    of bench.common.sample_data (instead of the per-city shapefiles)."""
    jobs = work / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for name in names:
        spec = yaml.safe_load((PROJECT / "etl" / "jobs" / f"{name}.yml").read_text())
        if name == "land_parcels":
            spec["source"] = {
                "path": "land/parcels.gpkg",
                "layer": "parcels",
                "encoding": "utf-8",
                "srid": 5899,
            }
        (jobs / f"{name}.yml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return jobs


def run_input_jobs(
    url: str, data: Path, work: Path, names: Iterable[str]
) -> Iterator[tuple[str, RunResult, float]]:
    """Run the jobs ``names`` in order on ``data``; yields each job's name, its run result
    (sdi.etl.runner) and its wall time in seconds."""
    from sdi.etl.runner import run_job
    from sdi.etl.spec import load_job
    from sdi.settings import get_settings

    names = tuple(names)
    jobs = input_jobs_dir(work, names)
    settings = get_settings().model_copy(update={"source_dir": data, "jobs_dir": jobs})
    for name in names:
        start = time.perf_counter()
        result = run_job(load_job(jobs / f"{name}.yml", settings), url, settings=settings)
        yield name, result, time.perf_counter() - start


def table_sizes(url: str, tables: Iterable[str]) -> dict[str, int]:
    """Rows of each table (the scale a measurement was taken at)."""
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
