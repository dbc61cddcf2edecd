"""A scratch warehouse with two provinces, for the national-warehouse tests (issue 14).

The sample's communes are loaded by their job, then two of the four cities are put in another
province (Hà Nội, 01) in the communes layer: parcels of those communes go to that province's
partition. Parcels are delivered per province with :func:`deliver_parcels`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg

from sdi.etl.results import RunResult
from sdi.etl.runner import run_job
from sdi.etl.spec import discover_jobs, load_job
from tests.support.etl_runs import scratch_database, write_parcels

PROVINCE_OF_CITY = {"ha_long": "22", "uong_bi": "22", "cam_pha": "01", "mong_cai": "01"}


def run(settings, url: str, job_name: str, folder: Path | None = None) -> RunResult:
    local = settings.model_copy(update={"source_dir": folder or settings.source_dir})
    job = load_job(discover_jobs(settings)[job_name], local)
    result = run_job(job, url, settings=local)
    assert result.status == "succeeded", result.message
    return result


@contextlib.contextmanager
def nation_warehouse(
    migrated: str, settings, prefix: str, jobs: tuple[str, ...] = ()
) -> Iterator[tuple[str, psycopg.Connection]]:
    """A scratch warehouse: the sample communes in two provinces, then ``jobs`` loaded from
    the session's sample deliveries."""
    from sdi.samples import load_communes

    with (
        scratch_database(migrated, settings, prefix) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        run(settings, url, "admin_communes")
        communes = load_communes()
        other = communes.loc[communes["city"].map(PROVINCE_OF_CITY) == "01", "commune_code"]
        conn.execute(
            "UPDATE admin.communes SET province_code = '01' WHERE commune_code = ANY(%s)",
            (list(other),),
        )
        for job in jobs:
            run(settings, url, job)
        yield url, conn


def deliver_parcels(settings, url: str, folder: Path, table: pd.DataFrame) -> RunResult:
    """Write ``table`` (parcel_table's columns) as the land office's shapefiles and load it."""
    write_parcels(folder, table.drop(columns=[c for c in ("province",) if c in table]))
    return run(settings, url, "land_parcels", folder)


def with_provinces(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(province=table["city"].map(PROVINCE_OF_CITY))
