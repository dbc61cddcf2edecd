"""Merge staged rows into a target table, inside the run's single transaction.

- ``history``: a feature whose attributes or geometry changed gets a new version (the old one
  is closed with ``valid_to``); new features are added; current features missing from the
  delivery are retired; unchanged ones are not touched.
- ``replace_slice``: the same, but only features of the slices present in the delivery (e.g.
  the communes of one city) are retired: a city can deliver its part alone.
- ``append``: a time series keyed by the table's primary key; repeated rows are ignored,
  corrected values replace the old ones.
- contributions: when several departments feed one table, each delivery is versioned in
  ``etl.contributions`` under its source name, the table is rebuilt from all current
  contributions by the merge rule (``etl/merge_rules/``), and that is merged with history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from sdi.db.tables import REPAIRED_COLUMN
from sdi.etl.provinces import PROVINCE_COLUMN, delivered_provinces, ensure_partitions, partition_key
from sdi.etl.results import MergeCounts
from sdi.etl.rules import MergeRule
from sdi.etl.stage import DELIVERED_TABLE, STAGE_TABLE, TargetTable
from sdi.sql import load, one, query

# The communes a load touched, besides those of retired features: those of the versions it
# wrote (new and changed features; one index scan of run_id).
_WRITTEN_COMMUNES = (
    "SELECT coalesce(array_agg(DISTINCT commune_code) FILTER (WHERE commune_code IS NOT NULL), "
    "'{{}}') FROM {} WHERE run_id = %s"
)


def touched_communes(
    conn: psycopg.Connection, target: TargetTable, run_id: int, counts: MergeCounts
) -> MergeCounts:
    """``counts`` with ``communes``: every commune whose features the load added, changed
    or retired (None when the target has no commune_code). A feature moved to another commune
    counts in its new one only."""
    if "commune_code" not in target.columns:
        return counts
    cursor = conn.execute(sql.SQL(_WRITTEN_COMMUNES).format(target.qualified), (run_id,))
    counts.communes = frozenset(one(cursor)[0]) | (counts.communes or frozenset())
    return counts


COMBINED_TABLE = "sdi_combined"


@dataclass
class Versioned:
    """How staged rows (alias ``s``) become versions of rows in a versioned table (alias ``t``)."""

    table: sql.Composable
    stage: str
    columns: list[str]  # columns written, besides run_id, valid_from and row_hash
    values: list[sql.Composable]  # one expression over ``s`` per column
    row_hash: sql.Composable  # over ``s``; equal hashes mean nothing changed
    keeps_id: bool = True  # feature tables carry the stable feature id into new versions
    scope: list[tuple[str, str]] = field(default_factory=list)  # target rows: column = value
    retire_only: sql.Composable | None = None  # extra condition on retired rows (slices)
    delivered: str | None = None  # table of every delivered key (default: the stage)
    # With row hashes computed by the pipeline (staged as ``row_hash``): a version whose
    # hash differs is compared value by value before it is closed, so rows hashed another way
    # (md5 of the row, before 2026-11) are not taken for changes; their hash is refreshed.
    differs: sql.Composable | None = None
    refresh: list[str] = field(default_factory=list)  # columns of s copied onto same versions
    has_communes: bool = False  # the table has commune_code: the merge says which it touched
    provinces: list[str] | None = None  # a table partitioned by province: the ones to read

    def scoped(self, alias: str) -> sql.Composable:
        conditions = [
            sql.SQL(" AND {} = {}").format(sql.Identifier(alias, column), sql.Literal(value))
            for column, value in self.scope
        ]
        if self.provinces is not None:
            conditions.append(sql.SQL(" AND {}").format(in_provinces(alias, self.provinces)))
        return sql.SQL("").join(conditions)


def in_provinces(alias: str, codes: list[str]) -> sql.Composable:
    """``alias.province_code = ANY(codes)``: a literal list, so that the planner prunes the
    other provinces' partitions."""
    return sql.SQL("{} = ANY({}::text[])").format(
        sql.Identifier(alias, PROVINCE_COLUMN), sql.Literal(codes)
    )


def provinces_moved_from(
    conn: psycopg.Connection, target: TargetTable, stage: str, codes: list[str]
) -> set[str]:
    """The provinces besides ``codes`` that hold a current version of a staged feature (a
    feature moved to another province is closed where it was).

    Only staged features with no current version in ``codes`` can have moved (in a province's
    re-delivery: its new features, usually few, often none); those are looked up in each other
    province's key index (province, key), not by scanning the nation's rows."""
    table = target.qualified
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE sdi_maybe_moved ON COMMIT DROP AS "
            "SELECT s.natural_key FROM {stage} s WHERE NOT EXISTS ("
            "SELECT 1 FROM {table} t WHERE t.natural_key = s.natural_key "
            "AND t.valid_to IS NULL AND {delivered})"
        ).format(stage=sql.Identifier(stage), table=table, delivered=in_provinces("t", codes))
    )
    try:
        if not one(conn.execute("SELECT count(*) FROM sdi_maybe_moved"))[0]:
            return set()
        conn.execute("ANALYZE sdi_maybe_moved")
        others = [  # the provinces of the other partitions, from their bounds
            code
            for (code,) in conn.execute(
                "SELECT DISTINCT v[1] FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid, "
                "regexp_matches(pg_get_expr(c.relpartbound, c.oid), $$'([^']*)'$$, 'g') v "
                "WHERE i.inhparent = %s::regclass AND v[1] <> ALL(%s::text[])",
                (f"{target.schema}.{target.name}", codes),
            )
        ]
        conn.execute("SET LOCAL enable_nestloop = on")
        # a lateral probe per (feature, province): one index lookup in one partition each
        # (an EXISTS is planned as a semi-join over every partition's keys: 9.5 s against
        # 0.08 s for 500 features in a 10 M-parcel nation)
        cursor = conn.execute(
            sql.SQL(
                "SELECT coalesce(array_agg(DISTINCT o.code), '{{}}') "
                "FROM sdi_maybe_moved m CROSS JOIN unnest(%s::text[]) AS o (code) "
                "CROSS JOIN LATERAL (SELECT 1 FROM {table} t WHERE t.{province} = o.code "
                "AND t.natural_key = m.natural_key AND t.valid_to IS NULL LIMIT 1) AS found"
            ).format(table=table, province=sql.Identifier(PROVINCE_COLUMN)),
            (others,),
        )
        moved = set(one(cursor)[0])
        conn.execute("SET LOCAL enable_nestloop = off")
        return moved
    finally:
        conn.execute("DROP TABLE sdi_maybe_moved")


def _geometry_expression(target: TargetTable, alias: str) -> sql.Composable:
    geom = sql.Identifier(alias, "geom")
    if target.geometry_type and target.geometry_type.startswith("MULTI"):
        return sql.SQL("ST_Multi({})").format(geom)
    return geom


def _row_hash(columns: list[str], alias: str) -> sql.Composable:
    """md5 of every staged value (not the source hash): equal hashes mean nothing changed.

    Used where rows are combined in SQL (contributions); the pipeline hashes the rows it
    stages itself (``row_hash`` column), which costs the database nothing."""
    # geometry_repaired follows from the geometry, which is hashed: left out, rows hashed
    # before the column existed (0012a) are still the same rows
    skipped = ("source_hash", "row_hash", REPAIRED_COLUMN)
    values = sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns if c not in skipped)
    return sql.SQL("md5(ROW({})::text)::uuid").format(values)


def merge_versions(conn: psycopg.Connection, v: Versioned, run_id: int, staged: int) -> MergeCounts:
    """Close changed versions and add new ones, add new features, retire missing ones."""
    insert_columns = sql.SQL(", ").join(
        map(sql.Identifier, [*v.columns, "run_id", "valid_from", "row_hash"])
    )
    values = sql.SQL(", ").join([*v.values, sql.Literal(run_id), sql.SQL("now()"), v.row_hash])
    parts = {
        "table": v.table,
        "stage": sql.Identifier(v.stage),
        "hash": v.row_hash,
        "insert_columns": insert_columns,
        "values": values,
        "scope": v.scoped("t"),
    }
    id_column, id_value = (
        (sql.SQL("id, "), sql.SQL("c.id, ")) if v.keeps_id else (sql.SQL(""), sql.SQL(""))
    )
    changed = conn.execute(
        query("sdi.etl", "versions_close_changed").format(
            returning=sql.SQL("t.id, t.natural_key" if v.keeps_id else "t.natural_key"),
            differs=sql.SQL(" AND {}").format(v.differs) if v.differs else sql.SQL(""),
            id_column=id_column,
            id_value=id_value,
            **parts,
        )
    ).rowcount
    added = conn.execute(query("sdi.etl", "versions_add_new").format(**parts)).rowcount
    retired, retired_communes = one(
        conn.execute(
            query("sdi.etl", "versions_retire_missing").format(
                retire_only=(
                    sql.SQL(" AND {}").format(v.retire_only) if v.retire_only else sql.SQL("")
                ),
                delivered=sql.Identifier(v.delivered or v.stage),
                commune=sql.SQL("t.commune_code") if v.has_communes else sql.SQL("NULL::text"),
                **parts,
            )
        )
    )
    if v.refresh:
        # Same content read from different bytes (a new source hash), or hashed the old way:
        # remember the new hashes, no new version.
        conn.execute(
            query("sdi.etl", "versions_refresh").format(
                assignments=sql.SQL(", ").join(
                    sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in v.refresh
                ),
                changed=sql.SQL(" OR ").join(
                    sql.SQL("t.{0} IS DISTINCT FROM s.{0}").format(sql.Identifier(c))
                    for c in v.refresh
                ),
                **parts,
            )
        )
    return MergeCounts(
        added=added,
        updated=changed,
        unchanged=staged - added - changed,
        retired=retired,
        communes=frozenset(retired_communes or ()) if v.has_communes else None,
    )


def feature_versions(
    target: TargetTable, columns: list[str], stage: str, slice_column: str | None = None
) -> Versioned:
    """A feature table fed from ``stage`` (columns as staged)."""
    attributes = [c for c in columns if c not in ("geom", "row_hash")]
    retire_only = None
    if slice_column:
        retire_only = sql.SQL("t.{column} IN (SELECT DISTINCT {column} FROM {stage})").format(
            column=sql.Identifier(slice_column), stage=sql.Identifier(stage)
        )
    versions = Versioned(
        table=target.qualified,
        stage=stage,
        columns=[*attributes, "geom"],
        values=[*(sql.Identifier("s", c) for c in attributes), _geometry_expression(target, "s")],
        row_hash=_row_hash(columns, "s"),
        retire_only=retire_only,
        delivered=DELIVERED_TABLE if stage == STAGE_TABLE else None,
        refresh=[c for c in ("source_hash",) if c in columns],
        has_communes="commune_code" in target.columns,
    )
    if "row_hash" in columns:
        compared = [c for c in attributes if c not in ("natural_key", "source_hash")]
        if "geom" in columns:
            compared.append("geom")
        versions.row_hash = sql.Identifier("s", "row_hash")
        versions.differs = sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
            sql.SQL(", ").join(sql.Identifier("t", c) for c in compared),
            sql.SQL(", ").join(
                _geometry_expression(target, "s") if c == "geom" else sql.Identifier("s", c)
                for c in compared
            ),
        )
        versions.refresh.append("row_hash")
    return versions


def merge_append(
    conn: psycopg.Connection, target: TargetTable, columns: list[str], run_id: int, staged: int
) -> MergeCounts:
    keys = list(target.key_columns)
    values = [c for c in columns if c not in keys and c != "natural_key"]
    staged_columns = [c for c in columns if c != "natural_key"]
    insert = sql.SQL(", ").join(map(sql.Identifier, [*staged_columns, "run_id"]))
    select = sql.SQL(", ").join([*(sql.Identifier(c) for c in staged_columns), sql.Literal(run_id)])
    key_list = sql.SQL(", ").join(map(sql.Identifier, keys))
    updates = sql.SQL(", ").join(
        [
            *(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in values),
            sql.SQL("run_id = EXCLUDED.run_id"),
            sql.SQL("loaded_at = now()"),
        ]
    )
    changed_condition = sql.SQL(" OR ").join(
        sql.SQL("t.{0} IS DISTINCT FROM EXCLUDED.{0}").format(sql.Identifier(c)) for c in values
    )
    cursor = conn.execute(
        query("sdi.etl", "append").format(
            table=target.qualified,
            insert=insert,
            select=select,
            keys=key_list,
            stage=sql.Identifier(STAGE_TABLE),
            updates=updates,
            changed=changed_condition,
        )
    )
    added, updated = one(cursor)
    return MergeCounts(added=added, updated=updated, unchanged=staged - added - updated)


# -- several departments, one table ------------------------------------------------------------
def merge_contribution(
    conn: psycopg.Connection,
    target: TargetTable,
    source: str,
    columns: list[str],
    run_id: int,
    staged: int,
) -> MergeCounts:
    """Version this delivery in etl.contributions under its source name."""
    attributes = [c for c in columns if c not in ("natural_key", "geom")]
    as_json = sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier("s", c)) for c in attributes
        )
    )
    name = f"{target.schema}.{target.name}"
    versioned = Versioned(
        table=sql.Identifier("etl", "contributions"),
        stage=STAGE_TABLE,
        columns=["target", "source", "natural_key", "attributes", "geom"],
        values=[
            sql.Literal(name),
            sql.Literal(source),
            sql.Identifier("s", "natural_key"),
            as_json,
            sql.Identifier("s", "geom") if "geom" in columns else sql.NULL,
        ],
        row_hash=_row_hash(columns, "s"),
        keeps_id=False,
        scope=[("target", name), ("source", source)],
        delivered=DELIVERED_TABLE,
    )
    return merge_versions(conn, versioned, run_id, staged)


def combine_contributions(
    conn: psycopg.Connection, target: TargetTable, rule: MergeRule
) -> tuple[int, list[str]]:
    """Build the combined stage: per feature and column, the first source in the rule's order
    that has a value. Returns the number of combined features and the combined columns (every
    column some source contributes)."""
    name = f"{target.schema}.{target.name}"
    contributed = {
        key
        for (key,) in conn.execute(
            "SELECT DISTINCT jsonb_object_keys(attributes) FROM etl.contributions "
            "WHERE target = %s AND valid_to IS NULL",
            (name,),
        )
    }
    attributes = [c for c in target.columns if c in contributed]

    def first_of(column: str) -> sql.Composable:
        # whether the geometry was repaired is said by the source the geometry comes from
        order = rule.priority("geom" if column == REPAIRED_COLUMN else column)
        return sql.SQL("coalesce({})").format(
            sql.SQL(", ").join(
                sql.SQL("nullif(p.by_source -> {} -> {}, 'null'::jsonb)").format(
                    sql.Literal(source), sql.Literal(column)
                )
                for source in order
            )
        )

    merged = sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(c), first_of(c)) for c in attributes
        )
    )
    geometry = sql.SQL("coalesce({})").format(
        sql.SQL(", ").join(
            sql.SQL("(array_agg(geom) FILTER (WHERE source = {}))[1]").format(sql.Literal(s))
            for s in rule.priority("geom")
        )
    )
    conn.execute(
        query("sdi.etl", "combine_contributions").format(
            combined=sql.Identifier(COMBINED_TABLE),
            geometry=geometry,
            name=sql.Literal(name),
            typed=sql.SQL(", ").join(sql.Identifier("r", c) for c in attributes),
            table=target.qualified,
            merged=merged,
        )
    )
    conn.execute(sql.SQL("CREATE INDEX ON {} (natural_key)").format(sql.Identifier(COMBINED_TABLE)))
    cursor = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(COMBINED_TABLE)))
    count = one(cursor)[0]
    return count, ["natural_key", *attributes, "geom"]


def lock_target(conn: psycopg.Connection, target: TargetTable) -> None:
    """Writers of one table queue here; readers are never blocked (SHARE ROW EXCLUSIVE)."""
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target.qualified))


def has_current_rows(conn: psycopg.Connection, target: TargetTable) -> bool:
    """Whether any feature of the target is current (locks the target first: the answer must
    hold until the run commits)."""
    lock_target(conn, target)
    cursor = conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE valid_to IS NULL)").format(target.qualified)
    )
    return one(cursor)[0]


@dataclass
class SuspendedIndexes:
    """Indexes dropped for a bulk load, to be made again after it: their definitions, kept by
    the owner's ``etl.suspend_indexes`` when this role owns no table (``by_owner``)."""

    relation: str
    definitions: list[str] = field(default_factory=list)
    by_owner: bool = False


def drop_indexes_if_empty(
    conn: psycopg.Connection, target: TargetTable, methods: tuple[str, ...] | None = None
) -> SuspendedIndexes:
    """On a table with no rows at all, drop the indexes (but the primary key; only those of
    the access ``methods`` given, e.g. ``("gist",)``) and return them: building them once
    after a bulk load is faster than maintaining them row by row
    (``docs/etl-performance.md``). Dropping needs an exclusive lock until commit — harmless on
    an empty table, which no one is reading. The ETL role, which owns no table, asks the
    owner's ``etl.suspend_indexes`` (migration 0012d).

    The empty table is also truncated (when no foreign key refers to it): its rows and
    indexes then go to new files, for which PostgreSQL at ``wal_level = minimal`` (the local
    cluster's default) writes no WAL — it flushes the files at commit instead (the saving:
    ``docs/etl-performance.md``); a rollback still leaves the table as it was."""
    from sdi.db.roles import asks_owner

    relation = f"{target.schema}.{target.name}"
    cursor = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(target.qualified))
    empty = not one(cursor)[0]
    if not empty:
        return SuspendedIndexes(relation)
    cursor = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = %s::regclass)",
        (relation,),
    )
    referenced = one(cursor)[0]
    if not referenced:
        conn.execute(sql.SQL("TRUNCATE {}").format(target.qualified))
    wanted = list(methods) if methods else None
    if asks_owner(conn, relation, "etl.suspend_indexes(regclass, text[])"):
        suspended = conn.execute(
            "SELECT etl.suspend_indexes(%s::regclass, %s::text[])", (relation, wanted)
        ).fetchall()
        return SuspendedIndexes(relation, [d for (d,) in suspended], by_owner=True)
    indexes = conn.execute(load("sdi.etl", "target_indexes"), (relation, wanted, wanted)).fetchall()
    for schema, name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
    return SuspendedIndexes(relation, [definition for _, _, definition in indexes])


def create_indexes(conn: psycopg.Connection, suspended: SuspendedIndexes) -> None:
    if suspended.by_owner:
        conn.execute("SELECT etl.restore_indexes(%s::regclass)", (suspended.relation,))
        return
    for definition in suspended.definitions:
        conn.execute(definition)


def merge(
    conn: psycopg.Connection,
    mode: str,
    target: TargetTable,
    columns: list[str],
    run_id: int,
    staged: int,
    *,
    slice_column: str | None = None,
    contribution: tuple[str, MergeRule] | None = None,
    direct: bool = False,
    provinces: set[str] | None = None,
) -> MergeCounts:
    """``direct``: the rows were copied straight into a target without current rows (a first
    load, see ``JobRun.load``): all of them are new features and nothing is left to do.

    A target partitioned by province (``sdi/etl/provinces.py``) is merged province by
    province: only features of the provinces the delivery brings (its staged rows and
    ``provinces``, those of the rows it delivered unchanged) are retired, so one province's
    delivery leaves the others' partitions alone."""
    if direct:
        return touched_communes(conn, target, run_id, MergeCounts(added=staged))
    lock_target(conn, target)
    # An empty or small target makes the planner pick nested-loop anti-joins, which rescan the
    # rows the same statement inserts: quadratic in the rows loaded. Hash joins are linear.
    conn.execute("SET LOCAL enable_nestloop = off")
    if mode == "append":
        return merge_append(conn, target, columns, run_id, staged)
    if contribution:
        source, rule = contribution
        merge_contribution(conn, target, source, columns, run_id, staged)
        combined, combined_columns = combine_contributions(conn, target, rule)
        versions = feature_versions(target, combined_columns, COMBINED_TABLE)
        counts = merge_versions(conn, versions, run_id, combined)
        return touched_communes(conn, target, run_id, counts)
    slice_column = slice_column if mode == "replace_slice" else None
    versions = feature_versions(target, columns, STAGE_TABLE, slice_column)
    if PROVINCE_COLUMN in columns and partition_key(conn, target):
        codes = delivered_provinces(conn, STAGE_TABLE, provinces)
        ensure_partitions(conn, target, set(codes))
        # Versions are read in the delivered provinces and those its features move from;
        # features are retired in the delivered provinces only.
        moved = provinces_moved_from(conn, target, STAGE_TABLE, codes)
        versions.provinces = sorted({*codes, *moved})
        retire = in_provinces("t", codes)
        versions.retire_only = (
            sql.SQL("{} AND {}").format(versions.retire_only, retire)
            if versions.retire_only
            else retire
        )
    indexes = drop_indexes_if_empty(conn, target)
    counts = merge_versions(conn, versions, run_id, staged)
    create_indexes(conn, indexes)
    return touched_communes(conn, target, run_id, counts)
