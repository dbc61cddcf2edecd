"""A national warehouse: parcels and buildings partitioned by province (issue 14).

The partitioned layout (keys that include the partition key, the default partition, the
as-of functions), a province's delivery that replaces only its own slice, and the API's
partition pruning for bbox and CQL2 queries, shown by EXPLAIN of the SQL the provider runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import yaml
from psycopg import sql

from tests.support.etl_runs import modify, parcel_table, write_parcels
from tests.support.nation import nation_warehouse, run, with_provinces

PARTITIONED = ("land.parcels", "construction.buildings")


def _partition_key(conn, table: str) -> tuple[str, str] | None:
    return conn.execute(
        "SELECT p.partstrat::text, a.attname::text FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = %s::regclass",
        (table,),
    ).fetchone()


def test_large_tables_are_list_partitioned_on_province_with_keys_that_include_it(db) -> None:
    for table in PARTITIONED:
        assert _partition_key(db, table) == ("l", "province_code"), table
        unique = db.execute(
            "SELECT c.relname::text, array(SELECT a.attname::text FROM pg_attribute a "
            "WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) "
            "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = %s::regclass AND i.indisunique",
            (table,),
        ).fetchall()
        assert {name for name, _ in unique} >= {f"{table.split('.')[1]}_current_key"}
        assert all("province_code" in columns for _, columns in unique), unique
        has_default = db.execute(
            "SELECT partdefid <> 0 FROM pg_partitioned_table WHERE partrelid = %s::regclass",
            (table,),
        ).fetchone()[0]
        assert has_default
        gist = db.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname || '.' || tablename = %s "
            "AND indexdef ILIKE '%%USING gist (geom)%%'",
            (table,),
        ).fetchone()[0]
        assert gist == 1


def test_every_unique_key_of_a_partitioned_warehouse_table_holds_its_partition_key(db) -> None:
    """What PostgreSQL (and Citus, docs/citus.md) requires; checked over the whole catalog."""
    offending = db.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_partitioned_table p "
        "JOIN pg_index i ON i.indrelid = p.partrelid AND i.indisunique "
        "WHERE NOT (p.partattrs::int2[] <@ i.indkey::int2[])"
    ).fetchall()
    assert offending == []


def test_loaded_parcels_sit_in_their_province_and_stay_queryable_as_of(loaded, db) -> None:
    total, in_22, in_default = db.execute(
        "SELECT (SELECT count(*) FROM land.parcels), (SELECT count(*) FROM land.parcels_p22), "
        "(SELECT count(*) FROM land.parcels_default)"
    ).fetchone()
    assert total > 0 and in_22 == total and in_default == 0
    as_of = db.execute("SELECT count(*) FROM land.parcels_as_of(now())").fetchone()[0]
    current = db.execute("SELECT count(*) FROM land.parcels_current").fetchone()[0]
    assert as_of == current > 0
    extent = db.execute(
        "SELECT ST_Contains(extent, (SELECT ST_Envelope(ST_Collect(geom)) FROM land.parcels)) "
        "FROM etl.partition_extents WHERE relation = 'land.parcels' AND province_code = '22'"
    ).fetchone()
    assert extent == (True,)


def test_after_a_first_load_every_partition_has_every_index_of_its_table(loaded, db) -> None:
    """A first load drops the GiST index and makes it again after the COPY: made from its
    "ON ONLY" definition it was an invalid index of the parent alone, and every query on
    the geometry read whole partitions."""
    invalid = db.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_partitioned_table p "
        "JOIN pg_index i ON i.indrelid = p.partrelid WHERE NOT i.indisvalid"
    ).fetchall()
    assert invalid == []
    gist = db.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'land' "
        "AND tablename = 'parcels_p22' AND indexdef LIKE '%USING gist (geom)%'"
    ).fetchone()[0]
    assert gist == 1


# -- one province's delivery replaces only its own slice ---------------------------------------


@pytest.fixture(scope="module")
def nation(migrated: str, manifest: dict, settings) -> Iterator[tuple[str, psycopg.Connection]]:
    with nation_warehouse(migrated, settings, "sdi_test_partitions") as warehouse:
        yield warehouse


def _run(settings, url: str, folder: Path):
    return run(settings, url, "land_parcels", folder)


def test_a_province_delivery_replaces_only_its_own_partition(nation, settings, tmp_path) -> None:
    url, conn = nation
    table = with_provinces(parcel_table(scale=0.05))
    a, b = table[table["province"] == "22"], table[table["province"] == "01"]
    write_parcels(tmp_path / "a1", a.drop(columns="province"))
    write_parcels(tmp_path / "b1", b.drop(columns="province"))

    first = _run(settings, url, tmp_path / "a1")  # a first load: straight into the partitions
    assert first.counts.added == len(a)
    second = _run(settings, url, tmp_path / "b1")  # B alone: A is not retired
    assert (second.counts.added, second.counts.retired) == (len(b), 0)
    counts = dict(
        conn.execute(
            "SELECT province_code, count(*) FROM land.parcels_current GROUP BY 1"
        ).fetchall()
    )
    assert counts == {"22": len(a), "01": len(b)}
    partitions = dict(
        conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM land.parcels GROUP BY 1"
        ).fetchall()
    )
    assert partitions == {"land.parcels_p22": len(a), "land.parcels_p01": len(b)}

    b_rows = "SELECT version_id, xmin::text, valid_to FROM land.parcels_p01 ORDER BY 1"
    b_before = conn.execute(b_rows).fetchall()
    before = conn.execute("SELECT now()").fetchone()[0]

    # A again: some parcels changed, some gone
    a = a.reset_index(drop=True)
    changed = np.arange(0, len(a), 7)[:20]
    gone = np.arange(3, len(a), 11)[:10]
    gone = gone[~np.isin(gone, changed)]
    a2 = modify(a, changed).drop(index=gone)
    write_parcels(tmp_path / "a2", a2.drop(columns="province"))
    third = _run(settings, url, tmp_path / "a2")
    assert (third.counts.updated, third.counts.retired, third.counts.added) == (
        len(changed),
        len(gone),
        0,
    )
    # B untouched: not one of its rows rewritten (same xmin, still current)
    assert conn.execute(b_rows).fetchall() == b_before
    # A's history: changed parcels have two versions of one feature, gone ones are closed,
    # and the state before the re-delivery is still there
    keys = a["key"].to_numpy()
    versions = conn.execute(
        "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE valid_to IS NULL) "
        "FROM land.parcels WHERE natural_key = ANY(%s)",
        (list(keys[changed]),),
    ).fetchone()
    assert versions == (2 * len(changed), len(changed), len(changed))
    assert (
        conn.execute(
            "SELECT count(*) FROM land.parcels_current WHERE natural_key = ANY(%s)",
            (list(keys[gone]),),
        ).fetchone()[0]
        == 0
    )
    then = conn.execute(
        "SELECT province_code, count(*) FROM land.parcels_as_of(%s) GROUP BY 1", (before,)
    ).fetchall()
    assert dict(then) == {"22": len(a), "01": len(b)}


def test_a_province_delivery_reads_only_its_own_provinces_source_hashes(nation, settings) -> None:
    """Rows delivered again unchanged are told by their source hashes: a province's delivery
    reads those of its own partition, not the nation's (sdi/etl/unchanged.py)."""
    from dataclasses import replace

    from sdi.etl.provinces import Provinces
    from sdi.etl.spec import discover_jobs, load_job
    from sdi.etl.stage import TargetTable
    from sdi.etl.unchanged import CurrentHashes

    _, conn = nation
    current = {
        province: conn.execute(
            "SELECT array_agg(commune_code), array_agg(natural_key), array_agg(source_hash) "
            "FROM land.parcels_current WHERE province_code = %s",
            (province,),
        ).fetchone()
        for province in ("22", "01")
    }
    assert all(current[p][0] for p in current), "the previous test loads both provinces"
    job = load_job(discover_jobs(settings)["land_parcels"], settings)
    target = TargetTable.introspect(conn, job.table)
    hashes = CurrentHashes(conn, target, job, Provinces(conn, settings.province_code))
    assert hashes.read_provinces == set()  # nothing read before a batch arrives

    communes, keys, source = current["22"]
    assert hashes.wanted(pd.DataFrame({"MAXA": communes})) == ["22"]
    hashes.read(["22"])
    assert hashes.read_provinces == {"22"}
    assert hashes.wanted(pd.DataFrame({"MAXA": communes})) == []
    changed = np.array(source, dtype=np.int64)
    changed[::2] += 1  # every other row changed since
    same, provinces = hashes.match(pd.Series(keys), changed, np.ones(len(keys), dtype=bool))
    assert same.tolist() == [i % 2 == 1 for i in range(len(keys))]
    assert set(provinces) == {"22"}
    # a row of the other province in a later batch: its province is read then
    assert hashes.wanted(pd.DataFrame({"MAXA": [communes[0], current["01"][0][0]]})) == ["01"]
    hashes.read(["01"])
    assert hashes.read_provinces == {"22", "01"}
    same, _ = hashes.match(
        pd.Series(current["01"][1]),
        np.array(current["01"][2], dtype=np.int64),
        np.ones(len(current["01"][1]), dtype=bool),
    )
    assert same.all()

    # a commune column mapped through a value map: the province is told only after
    # normalisation, so every province's hashes are read at once
    fields = [
        replace(f, value_map={"x": "y"}) if f.name == "commune_code" else f for f in job.fields
    ]
    everything = CurrentHashes(
        conn, target, replace(job, fields=fields), Provinces(conn, settings.province_code)
    )
    assert everything.read_provinces is None
    same, _ = everything.match(
        pd.Series(keys), np.array(source, dtype=np.int64), np.ones(len(keys), dtype=bool)
    )
    assert same.all()


def test_the_merge_finds_the_province_a_delivered_feature_moves_from(nation) -> None:
    """Versions are closed in the delivered provinces and in those the delivery's features
    were in before (sdi.etl.merge.provinces_moved_from), found by key, whatever the province."""
    from sdi.etl.merge import provinces_moved_from
    from sdi.etl.stage import TargetTable

    _, conn = nation
    key_of = {
        province: conn.execute(
            "SELECT natural_key FROM land.parcels_current WHERE province_code = %s LIMIT 1",
            (province,),
        ).fetchone()[0]
        for province in ("22", "01")
    }
    target = TargetTable.introspect(conn, "land.parcels")
    with conn.transaction(force_rollback=True):
        conn.execute("CREATE TEMP TABLE moved_stage (natural_key text) ON COMMIT DROP")
        conn.execute(
            "INSERT INTO moved_stage VALUES (%s), (%s), ('new-feature')",
            (key_of["22"], key_of["01"]),
        )
        assert provinces_moved_from(conn, target, "moved_stage", ["22"]) == {"01"}
        assert provinces_moved_from(conn, target, "moved_stage", ["22", "01"]) == set()
        # the planner's setting is put back for the merge's own statements
        assert conn.execute("SHOW enable_nestloop").fetchone()[0] == "off"


def test_a_commune_unknown_to_the_communes_layer_goes_to_the_deployment_province(
    nation, settings, tmp_path
) -> None:
    url, conn = nation
    table = parcel_table(scale=0.02)
    one_city = table[table["city"] == "ha_long"].head(5).copy()
    one_city["MAXA"] = "99999"
    one_city["key"] = "99999-" + one_city["SOTO"].astype(str) + "-" + one_city["SOTHUA"].astype(str)
    rest = parcel_table(scale=0.05)
    rest = rest[rest["city"].isin(["ha_long", "uong_bi"])]
    write_parcels(tmp_path / "d", pd.concat([rest, one_city]))
    _run(settings, url, tmp_path / "d")
    province = conn.execute(
        "SELECT DISTINCT province_code FROM land.parcels_current WHERE commune_code = '99999'"
    ).fetchall()
    assert province == [(settings.province_code,)]


# -- the API prunes partitions -----------------------------------------------------------------


def _scanned(db, statements: list[tuple[sql.Composable, dict]]) -> set[str]:
    """The parcels partitions the statements read: the plan nodes on them that ran (pruned
    at planning they are not in the plan; pruned while running, never executed)."""
    found: set[str] = set()

    def walk(node: dict) -> None:
        if node.get("Relation Name", "").startswith("parcels_") and node.get("Actual Loops"):
            found.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    for statement, params in statements:
        plan = db.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(statement), params)
        walk(plan.fetchone()[0][0]["Plan"])
    return found


def test_bbox_and_cql2_queries_scan_only_their_province_partition(loaded, db, settings) -> None:
    from sdi.api.provider import PostGISProvider

    class Recording(PostGISProvider):
        """The provider as served; it keeps the statements it runs, to EXPLAIN them."""

        def _execute(self, statement, params, conn=None):
            self.ran.append((statement, params))
            return super()._execute(statement, params, conn)

    config = yaml.safe_load(settings.pygeoapi_config.read_text())
    definition = next(
        p for p in config["resources"]["parcels"]["providers"] if p["type"] == "feature"
    )
    definition = {**definition, "properties": [*definition["properties"], "province_code"]}
    # A second province with an extent far from Quảng Ninh (Hà Nội), for the duration.
    db.execute("SELECT etl.ensure_province_partition('land.parcels', '01')")
    db.execute(
        "INSERT INTO etl.partition_extents VALUES "
        "('land.parcels', '01', ST_MakeEnvelope(105.3, 20.5, 106.1, 21.4, 4326))"
    )
    db.commit()
    try:
        west, south, east, north = db.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM (SELECT geom FROM land.parcels_current "
            "ORDER BY id LIMIT 50) g) x"
        ).fetchone()
        inside = [west, south, east, north]

        provider = Recording(definition)
        provider.ran = []
        page = provider.query(bbox=inside, limit=100)
        assert page["numberReturned"] > 0
        assert _scanned(db, provider.ran) == {"parcels_p22"}

        provider.ran = []
        provider.query(bbox=[105.5, 20.8, 105.9, 21.2], limit=100)  # Hà Nội: no parcel there
        assert _scanned(db, provider.ran) == {"parcels_p01"}

        from pygeofilter.parsers.cql2_text import parse

        provider.ran = []
        node = parse("province_code = '22' AND area_m2 > 100")
        page = provider.query(filterq=node, limit=1000)
        assert page["numberReturned"] > 0
        assert _scanned(db, provider.ran) == {"parcels_p22"}
    finally:
        db.rollback()
        db.execute("DELETE FROM etl.partition_extents WHERE province_code = '01'")
        db.execute("DROP TABLE IF EXISTS land.parcels_p01")
        db.commit()


def test_the_partitioning_downgrades_and_upgrades_again(migrated: str, settings) -> None:
    """0012b down to plain tables and up again keeps the privileges and the partitions (the
    column privileges of the dropped province_code column once broke the second upgrade)."""
    from alembic import command

    from sdi.db.migrate import alembic_config, current_revision, upgrade
    from tests.support.etl_runs import scratch_database

    partitioned = "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = %s::regclass"
    with scratch_database(migrated, settings, "sdi_test_unpartition") as url:
        command.downgrade(alembic_config(url, settings), "0012a")
        assert current_revision(url) == "0012a"
        with psycopg.connect(url) as conn:
            assert conn.execute(partitioned, ("land.parcels",)).fetchone()[0] == 0
        upgrade(url, settings)
        with psycopg.connect(url) as conn:
            for table in ("land.parcels", "construction.buildings"):
                assert conn.execute(partitioned, (table,)).fetchone()[0] == 1
