"""First loads go straight into the target (no staging, no merge); what they write is what a
merge writes, and rows hashed the way older versions did are not taken for changes.

Each test has a scratch warehouse of its own: they need an empty land.parcels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from sdi.errors import WarehouseRefused
from sdi.etl.runner import run_job
from sdi.etl.spec import discover_jobs, load_job
from sdi.etl.stage import Stage, TargetTable
from tests.support.etl_runs import parcel_table, scratch_database, temp_tables, write_parcels

# Current versions of land.parcels written by the pipeline: all carry its row-hash marker.
PIPELINE_HASHES = (
    "SELECT count(*) FILTER (WHERE substring(uuid_send(row_hash) FROM 9) = 'sdi:src1'::bytea) "
    "FROM land.parcels WHERE valid_to IS NULL"
)


@pytest.fixture(scope="module")
def scratch(migrated: str, settings) -> Iterator[tuple[str, psycopg.Connection]]:
    with (
        scratch_database(migrated, settings, "sdi_test_first_load") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        yield url, conn


@pytest.fixture()
def warehouse(scratch) -> tuple[str, psycopg.Connection]:
    """The scratch warehouse with an empty land.parcels and no runs."""
    _, conn = scratch
    conn.execute("TRUNCATE land.parcels, etl.runs CASCADE")
    conn.execute("DROP TABLE IF EXISTS public.odd")
    return scratch


def _parcels_job(settings, source_dir: Path):
    job_settings = settings.model_copy(update={"source_dir": source_dir})
    return load_job(discover_jobs(settings)["land_parcels"], job_settings), job_settings


INDEXES = "SELECT indexdef FROM pg_indexes WHERE schemaname = 'land' AND tablename = 'parcels'"


def test_first_load_writes_what_a_merge_writes(warehouse, settings, tmp_path) -> None:
    url, conn = warehouse
    indexes = sorted(conn.execute(INDEXES).fetchall())
    write_parcels(tmp_path, parcel_table(scale=0.25))
    job, job_settings = _parcels_job(settings, tmp_path)
    first = run_job(job, url, settings=job_settings)
    assert first.status == "succeeded", first.message
    loaded = first.rows_read - first.rejected
    assert loaded > 1000
    assert (first.counts.added, first.counts.updated, first.counts.retired) == (loaded, 0, 0)

    rows = conn.execute(
        """
        SELECT count(*), count(DISTINCT id), count(DISTINCT natural_key),
               count(*) FILTER (WHERE valid_to IS NULL), bool_and(run_id = %s),
               count(DISTINCT valid_from), bool_and(ST_SRID(geom) = 4326),
               bool_and(GeometryType(geom) = 'MULTIPOLYGON'), bool_and(ST_IsValid(geom)),
               bool_and(cardinality(land_use_codes) >= 1), bool_and(source_hash IS NOT NULL)
        FROM land.parcels
        """,
        (first.run_id,),
    ).fetchone()
    assert rows == (loaded, loaded, loaded, loaded, True, 1, True, True, True, True, True)
    # version_id and id were numbered by the load itself; the sequences continue after them
    numbering = conn.execute(
        "SELECT min(version_id), max(version_id), min(id), max(id), "
        "nextval(pg_get_serial_sequence('land.parcels', 'version_id')), "
        "nextval('land.parcels_id_seq') FROM land.parcels"
    ).fetchone()
    low_version, high_version, low_id, high_id, next_version, next_id = numbering
    assert high_version - low_version + 1 == loaded and high_id - low_id + 1 == loaded
    assert next_version == high_version + 1 and next_id == high_id + 1
    assert sorted(conn.execute(INDEXES).fetchall()) == indexes  # GiST dropped, built again
    assert any("USING gist" in i for (i,) in indexes)
    # valid_from is the time of the run's transaction, as the merge's now()
    started, finished, valid_from = conn.execute(
        "SELECT r.started_at, r.finished_at, (SELECT min(valid_from) FROM land.parcels) "
        "FROM etl.runs r WHERE run_id = %s",
        (first.run_id,),
    ).fetchone()
    assert started <= valid_from <= finished
    assert conn.execute(PIPELINE_HASHES).fetchone()[0] == loaded
    multi = conn.execute(
        "SELECT count(*) FROM land.parcels WHERE land_use_codes @> ARRAY['ONT', 'CLN']"
    ).fetchone()[0]
    assert multi > 0  # "ONT+CLN" became a two-element array

    # A forced re-run of the same delivery: every row's source hash is unchanged.
    again = run_job(job, url, settings=job_settings, force=True)
    assert (again.counts.added, again.counts.updated, again.counts.unchanged) == (0, 0, loaded)

    # Rows hashed as older versions did (md5 in the database, no source hash) are staged and
    # merged: the merge compares their values with what the pipeline makes of the delivery
    # now — every column and the geometry must agree with what the first load wrote.
    conn.execute(
        "UPDATE land.parcels SET row_hash = md5(natural_key)::uuid, source_hash = NULL "
        "WHERE valid_to IS NULL"
    )
    legacy = run_job(job, url, settings=job_settings, force=True)
    assert legacy.status == "succeeded", legacy.message
    counts = legacy.counts
    assert (counts.added, counts.updated, counts.retired, counts.unchanged) == (0, 0, 0, loaded)
    assert conn.execute("SELECT count(*) FROM land.parcels").fetchone()[0] == loaded
    # … and their hashes are now the pipeline's, so the next re-run skips them again
    assert conn.execute(PIPELINE_HASHES).fetchone()[0] == loaded
    last = run_job(job, url, settings=job_settings, force=True)
    assert last.counts.unchanged == loaded and last.counts.updated == 0


def test_first_load_refused_by_the_warehouse_leaves_the_table_empty(
    warehouse, settings, tmp_path
) -> None:
    """A commune code too long for varchar(5) in the last rows: the COPY straight into the
    target fails after earlier batches were sent; nothing stays, the indexes are intact."""
    url, conn = warehouse
    indexes = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'land' AND tablename = 'parcels'"
    ).fetchone()[0]
    table = parcel_table(scale=0.25)
    table.iloc[-3:, table.columns.get_loc("MAXA")] = table["MAXA"].iloc[-3:] + "9"
    from sdi.samples import PARCEL_FIELDS

    write_parcels(tmp_path, table, fields={**PARCEL_FIELDS, "MAXA": "str:6"})
    job, job_settings = _parcels_job(settings, tmp_path)
    with pytest.raises(WarehouseRefused, match="character varying\\(5\\)"):
        run_job(job, url, settings=job_settings)
    assert conn.execute("SELECT count(*) FROM land.parcels").fetchone()[0] == 0
    run = conn.execute("SELECT status, message FROM etl.runs ORDER BY run_id DESC").fetchone()
    assert run[0] == "failed" and "nothing was written" in run[1]
    assert temp_tables(conn) == 0
    assert (
        conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'land' AND tablename = 'parcels'"
        ).fetchone()[0]
        == indexes
    )


def test_stage_falls_back_to_csv_for_types_binary_copy_does_not_know(warehouse) -> None:
    """jsonb and numeric have no binary encoder here: the whole COPY is CSV, same values."""
    _, conn = warehouse
    conn.execute(
        "CREATE TABLE public.odd (natural_key text, doc jsonb, amount numeric(8, 2), "
        "tags text[], row_hash uuid, geom geometry(MultiPoint, 4326))"
    )
    target = TargetTable.introspect(conn, "public.odd")
    frame = pd.DataFrame(
        {
            "natural_key": ["a", "b"],
            "doc": ['{"x": 1}', None],
            "amount": [12.5, None],
            "tags": [("x", 'quo"te'), None],
            "row_hash": [bytes(range(16)), None],
            "geom": [bytes.fromhex("0104000000010000000101000000000000000000f03f0000000000000040")]
            * 2,
        }
    )
    with conn.transaction():
        stage = Stage(conn, target, list(frame.columns), direct=True)
        assert not stage.binary
        with stage:
            stage.write(frame)
    rows = conn.execute(
        "SELECT natural_key, doc, amount::text, tags, row_hash::text, ST_AsText(geom), "
        "ST_SRID(geom) FROM public.odd ORDER BY natural_key"
    ).fetchall()
    assert rows == [
        (
            "a",
            {"x": 1},
            "12.50",
            ["x", 'quo"te'],
            "00010203-0405-0607-0809-0a0b0c0d0e0f",
            "MULTIPOINT((1 2))",
            4326,
        ),
        ("b", None, None, None, None, "MULTIPOINT((1 2))", 4326),
    ]


def test_stage_cancels_its_copy_when_the_run_fails(warehouse) -> None:
    """An error while batches are read (here: raised by the test) cancels the COPY in flight;
    the connection can go on and nothing was written."""
    _, conn = warehouse
    target = TargetTable.introspect(conn, "land.parcels")
    frame = pd.DataFrame({"natural_key": ["k1", "k2"], "commune_code": ["06652", "06653"]})
    with pytest.raises(RuntimeError, match="the source broke"), conn.transaction():
        stage = Stage(conn, target, ["natural_key", "commune_code"])
        assert stage.binary
        with stage:
            stage.write(frame)
            raise RuntimeError("the source broke")
    assert conn.execute("SELECT 1").fetchone() == (1,)
    assert temp_tables(conn) == 0


def test_first_load_into_an_empty_table_writes_almost_no_wal(warehouse, settings, tmp_path):
    """The empty target is truncated first: at wal_level = minimal (the local cluster's
    default) its rows and indexes then write no WAL. A table another one refers to by a
    foreign key cannot be truncated alone: it is loaded as it is."""
    url, conn = warehouse
    if conn.execute("SHOW wal_level").fetchone()[0] != "minimal":
        pytest.skip("the warehouse under test runs another wal_level (SDI_TEST_DATABASE_URL)")
    # big enough that the table is past wal_skip_threshold (2 MB): smaller ones are logged whole
    write_parcels(tmp_path, parcel_table(scale=1))
    job, job_settings = _parcels_job(settings, tmp_path)
    # land.parcels is partitioned by province (0012b): its rows are in Quảng Ninh's partition
    file_of = "SELECT pg_relation_filenode('land.parcels_p22')"
    lsn = "SELECT pg_current_wal_insert_lsn()"

    def load() -> tuple[int, int]:
        """(WAL bytes the load wrote, bytes of the loaded table and its indexes)."""
        start = conn.execute(lsn).fetchone()[0]
        result = run_job(job, url, settings=job_settings)
        assert result.status == "succeeded" and result.counts.added > 1000, result.message
        return conn.execute(
            "SELECT pg_current_wal_insert_lsn() - %s::pg_lsn, "
            "pg_total_relation_size('land.parcels_p22')",
            (str(start),),
        ).fetchone()

    before = conn.execute(file_of).fetchone()[0]
    wal, size = load()
    assert conn.execute(file_of).fetchone()[0] != before  # new files: truncated in the run
    # (indexes under wal_skip_threshold are logged whole at commit: some WAL, not all)
    assert wal < size / 3, (wal, size)

    conn.execute("TRUNCATE land.parcels, etl.runs CASCADE")
    conn.execute(
        "CREATE TABLE public.odd (version_id bigint, province_code varchar(2), "
        "FOREIGN KEY (version_id, province_code) REFERENCES land.parcels)"
    )
    before = conn.execute(file_of).fetchone()[0]
    wal, size = load()
    assert conn.execute(file_of).fetchone()[0] == before
    assert wal > size, (wal, size)  # logged row by row, as before


def test_stage_numbers_rows_from_the_tables_sequence_unless_delivered(warehouse) -> None:
    """A direct COPY numbers a bigserial column itself and moves its sequence past the rows;
    a column the delivery fills keeps the delivered values."""
    _, conn = warehouse
    conn.execute("CREATE TABLE public.odd (id bigserial, natural_key text)")
    target = TargetTable.introspect(conn, "public.odd")
    with conn.transaction():
        with Stage(conn, target, ["natural_key"], direct=True) as stage:
            stage.write(pd.DataFrame({"natural_key": ["a", "b", "c"]}))
        with Stage(conn, target, ["id", "natural_key"], direct=True) as stage:
            stage.write(pd.DataFrame({"id": [100], "natural_key": ["d"]}))
    rows = conn.execute("SELECT id, natural_key FROM public.odd ORDER BY natural_key").fetchall()
    assert rows == [(1, "a"), (2, "b"), (3, "c"), (100, "d")]
    # the first stage moved the sequence past its rows; the second did not touch it
    assert conn.execute("SELECT nextval('public.odd_id_seq')").fetchone()[0] == 4
