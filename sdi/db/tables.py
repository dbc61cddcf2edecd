"""Feature tables: the one function that writes their DDL, for built-in and declared tables.

Every feature table of the warehouse has the same bookkeeping (see migration 0001): a stable
``id`` from its own sequence, ``version_id``, ``natural_key``, ``commune_code`` +
``admin_vintage``, the domain columns, ``run_id``, ``valid_from``/``valid_to``, ``row_hash``,
a typed SRID 4326 ``geom`` with a GiST index, a ``<table>_current`` view, ``source_hash``
(0005), ``<table>_as_of(timestamptz)`` (0002) and ``geometry_repaired`` (0012a: the ETL marks
the features whose geometry ``make_valid`` repaired). The frozen migrations 0001, 0002, 0006
and 0011 call :func:`feature_table_sql` and :func:`as_of_function_sql` (their DDL is
byte-identical to what they wrote before: ``tests/db/test_generated_tables.py`` holds its
checksum), 0012a calls :func:`repaired_flag_sql`, and the revisions ``sdi table sync``
generates for tables declared in job specs call :func:`create_feature_table` (all of these),
so a declared table and a built-in one cannot drift apart.

Identifiers are checked against :data:`IDENTIFIER` and types come from :data:`COLUMN_TYPES`
before they are put into DDL: the text is plain (unquoted) so that the built-in migrations'
DDL stays exactly what it was.

Generated revisions (``t0001_<table>.py``, …) live beside the hand-written ones; each holds the
table's full declared state after it (``TABLE``), which the next ``sdi table sync`` compares
with the job spec to write only the difference (added columns, widened types). Destructive
changes (a dropped column, a narrowed or changed type, another geometry type) are refused
with :class:`DestructiveChange`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sdi.errors import ConfigError

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Declared column type → SQL type. The ETL's field types (text, integer, float, date,
# timestamptz, text[]) map onto these; bigint and boolean are for wider or yes/no columns.
COLUMN_TYPES: dict[str, str] = {
    "text": "text",
    "integer": "integer",
    "bigint": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "date": "date",
    "timestamptz": "timestamptz",
    "text[]": "text[]",
}
# (from, to): a type change every existing value survives unchanged.
WIDENINGS: frozenset[tuple[str, str]] = frozenset(
    {("integer", "bigint"), ("integer", "float")}
    | {(t, "text") for t in ("integer", "bigint", "float", "boolean", "date", "timestamptz")}
)
GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
)
# Columns every feature table has; a declared column may not reuse these names.
BOOKKEEPING_COLUMNS = frozenset(
    {
        "version_id",
        "id",
        "natural_key",
        "commune_code",
        "admin_vintage",
        "run_id",
        "valid_from",
        "valid_to",
        "row_hash",
        "geom",
        "source_hash",
        "geometry_repaired",
    }
)
# true on a feature whose delivered geometry was invalid and repaired by the ETL (make_valid)
REPAIRED_COLUMN = "geometry_repaired"
GENERATED_PREFIX = "t"  # generated revision ids: t0001_<table>; hand-written ones are 0001…
_GENERATED_FILE = re.compile(r"^t(\d{4})_[a-z0-9_]+\.py$")
ALEMBIC_ID_LENGTH = 32  # alembic_version.version_num is varchar(32)


class DestructiveChange(ConfigError):
    """A declared table changed in a way that would lose data; refused."""


def check_identifier(name: str, what: str = "name") -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"{what} {name!r}: use lower-case letters, digits and _ (starting with a letter)"
        )
    return name


def split_qualified(qualified: str) -> tuple[str, str]:
    schema, _, table = qualified.partition(".")
    if not table:
        raise ConfigError(f"table {qualified!r}: write it as schema.table")
    return check_identifier(schema, "schema"), check_identifier(table, "table")


@dataclass(frozen=True)
class Column:
    """A declared domain column: name, declared type (:data:`COLUMN_TYPES`), NOT NULL."""

    name: str
    type: str = "text"
    not_null: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.name, "column")
        if self.name in BOOKKEEPING_COLUMNS:
            raise ConfigError(
                f"column {self.name!r}: every feature table has it already (bookkeeping: "
                f"{', '.join(sorted(BOOKKEEPING_COLUMNS))}); choose another name"
            )
        if self.type not in COLUMN_TYPES:
            raise ConfigError(
                f"column {self.name}: type {self.type!r} is not one of {', '.join(COLUMN_TYPES)}"
            )

    @property
    def sql(self) -> str:
        return f"{self.name} {COLUMN_TYPES[self.type]}" + (" NOT NULL" if self.not_null else "")


@dataclass(frozen=True)
class FeatureTable:
    """A feature table's declaration: ``schema.table``, geometry type, domain columns."""

    qualified: str
    geometry: str
    columns: tuple[Column, ...]
    comment: str = field(default="", compare=False)  # a changed comment is no new revision
    partition_by: str | None = None  # "province": LIST partitions on province_code (0012b)

    def __post_init__(self) -> None:
        split_qualified(self.qualified)
        if self.partition_by is not None and self.partition_by not in PARTITION_KEYS:
            raise ConfigError(
                f"{self.qualified}: partition_by {self.partition_by!r} is not one of "
                f"{', '.join(PARTITION_KEYS)}"
            )
        if self.partition_by and self.column(PARTITION_KEYS[self.partition_by]):
            raise ConfigError(
                f"{self.qualified}: {PARTITION_KEYS[self.partition_by]} is the partition key "
                "every partitioned table has; do not declare it"
            )
        if self.geometry not in GEOMETRY_TYPES:
            raise ConfigError(
                f"{self.qualified}: geometry {self.geometry!r} is not one of "
                f"{', '.join(GEOMETRY_TYPES)}"
            )
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ConfigError(f"{self.qualified}: a column is declared twice")

    @property
    def schema(self) -> str:
        return split_qualified(self.qualified)[0]

    @property
    def name(self) -> str:
        return split_qualified(self.qualified)[1]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


# -- DDL -------------------------------------------------------------------------------------


def feature_table_sql(qualified: str, geometry_type: str, columns: str) -> str:
    """CREATE TABLE, indexes and ``_current`` view of a feature table (0001's text).

    ``columns``: the domain columns as SQL (``name type [constraints]``, comma-separated), from
    a frozen migration or from :attr:`Column.sql`."""
    schema, table = split_qualified(qualified)
    return f"""
    CREATE TABLE {qualified} (
        version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id bigint NOT NULL DEFAULT nextval('{schema}.{table}_id_seq'),
        natural_key text NOT NULL,
        commune_code varchar(5),
        admin_vintage text NOT NULL DEFAULT '2025'
            CHECK (admin_vintage IN ('pre2025', '2025')),
        {columns},
        run_id bigint NOT NULL REFERENCES etl.runs (run_id),
        valid_from timestamptz NOT NULL,
        valid_to timestamptz,
        row_hash uuid NOT NULL,
        geom geometry({geometry_type}, 4326) NOT NULL,
        CHECK (valid_to IS NULL OR valid_to >= valid_from)
    );
    CREATE UNIQUE INDEX {table}_current_key ON {qualified} (natural_key) WHERE valid_to IS NULL;
    CREATE INDEX {table}_id ON {qualified} (id);
    CREATE INDEX {table}_run ON {qualified} (run_id);
    CREATE INDEX {table}_commune ON {qualified} (commune_code) WHERE valid_to IS NULL;
    CREATE INDEX {table}_geom ON {qualified} USING gist (geom);
    CREATE VIEW {qualified}_current AS SELECT * FROM {qualified} WHERE valid_to IS NULL;
    """


def as_of_function_sql(qualified: str) -> str:
    """``<table>_as_of(timestamptz)``: the versions current at an instant (0002's text)."""
    split_qualified(qualified)
    return f"""
            CREATE FUNCTION {qualified}_as_of(at timestamptz) RETURNS SETOF {qualified}
            LANGUAGE sql STABLE AS $$
                SELECT * FROM {qualified}
                WHERE valid_from <= at AND (valid_to IS NULL OR valid_to > at)
            $$;
            COMMENT ON FUNCTION {qualified}_as_of(timestamptz) IS
                'The versions of {qualified} that were current at the given instant';
            """


def create_feature_table_sql(qualified: str, geometry_type: str, columns: str) -> list[str]:
    """Every statement that makes a feature table as the built-in ones are today: 0001's
    table, 0005's ``source_hash`` without the per-row run_id foreign key, 0002's as-of."""
    schema, table = split_qualified(qualified)
    return [
        f"CREATE SEQUENCE {schema}.{table}_id_seq",
        feature_table_sql(qualified, geometry_type, columns),
        f"ALTER TABLE {qualified} ADD COLUMN source_hash bigint",
        f"ALTER TABLE {qualified} DROP CONSTRAINT IF EXISTS {table}_run_id_fkey",
        as_of_function_sql(qualified),
    ]


def repaired_flag_sql(qualified: str) -> list[str]:
    """``geometry_repaired``, false unless the ETL repaired the feature's geometry, and the
    ``_current`` view again (``SELECT *`` views keep the columns they were made with)."""
    split_qualified(qualified)
    return [
        f"ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {REPAIRED_COLUMN} boolean "
        "NOT NULL DEFAULT false",
        f"COMMENT ON COLUMN {qualified}.{REPAIRED_COLUMN} IS "
        "'The delivered geometry was invalid and the ETL repaired it (make_valid)'",
        f"CREATE OR REPLACE VIEW {qualified}_current AS "
        f"SELECT * FROM {qualified} WHERE valid_to IS NULL",
    ]


def drop_repaired_flag_sql(qualified: str) -> list[str]:
    split_qualified(qualified)
    return [
        f"DROP VIEW IF EXISTS {qualified}_current",
        f"ALTER TABLE {qualified} DROP COLUMN IF EXISTS {REPAIRED_COLUMN}",
        f"CREATE VIEW {qualified}_current AS SELECT * FROM {qualified} WHERE valid_to IS NULL",
    ]


def drop_feature_table_sql(qualified: str) -> list[str]:
    split_qualified(qualified)
    return [
        f"DROP FUNCTION IF EXISTS {qualified}_as_of(timestamptz)",
        f"DROP VIEW IF EXISTS {qualified}_current",
        f"DROP TABLE IF EXISTS {qualified}",
        f"DROP SEQUENCE IF EXISTS {qualified}_id_seq",
    ]


def _columns_sql(columns: Iterable[Column]) -> str:
    return ",\n        ".join(c.sql for c in columns)


Execute = Callable[[str], object]


def create_feature_table(execute: Execute, table: FeatureTable) -> None:
    """Create a declared table (``execute``: ``alembic.op.execute`` in a revision)."""
    execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
    for statement in create_feature_table_sql(
        table.qualified, table.geometry, _columns_sql(table.columns)
    ):
        execute(statement)
    for statement in repaired_flag_sql(table.qualified):
        execute(statement)
    if table.comment:
        execute(f"COMMENT ON TABLE {table.qualified} IS {_literal(table.comment)}")
    if table.partition_by:
        for statement in partition_by_province_sql(table.qualified, _fallback_province()):
            execute(statement)


def _fallback_province() -> str:
    from sdi.settings import get_settings

    return get_settings().province_code


def drop_feature_table(execute: Execute, table: FeatureTable) -> None:
    for statement in drop_feature_table_sql(table.qualified):
        execute(statement)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _with_view(table: FeatureTable, statements: list[str]) -> list[str]:
    """``SELECT *`` views and ``SETOF`` functions pin the columns: recreate them around a
    change of the table's columns (the as-of function's row type follows the table)."""
    q = table.qualified
    return [
        f"DROP VIEW IF EXISTS {q}_current",
        *statements,
        f"CREATE VIEW {q}_current AS SELECT * FROM {q} WHERE valid_to IS NULL",
    ]


def alter_feature_table(
    execute: Execute, before: FeatureTable, after: FeatureTable, *, reverse: bool = False
) -> None:
    """Apply (or with ``reverse`` undo) the additive change from ``before`` to ``after``."""
    plan_change(before, after)  # refuses what is destructive, also when a file was hand-edited
    q = after.qualified
    statements: list[str] = []
    for column in after.columns:
        old = before.column(column.name)
        if old is None:
            statements.append(
                f"ALTER TABLE {q} DROP COLUMN {column.name}"
                if reverse
                else f"ALTER TABLE {q} ADD COLUMN {column.sql}"
            )
        elif old.type != column.type:
            target = old if reverse else column
            statements.append(
                f"ALTER TABLE {q} ALTER COLUMN {column.name} TYPE {COLUMN_TYPES[target.type]} "
                f"USING {column.name}::{COLUMN_TYPES[target.type]}"
            )
        if old is not None and old.not_null != column.not_null:
            null = old.not_null if reverse else column.not_null
            statements.append(
                f"ALTER TABLE {q} ALTER COLUMN {column.name} "
                + ("SET NOT NULL" if null else "DROP NOT NULL")
            )
    for statement in _with_view(after, statements):
        execute(statement)


# -- comparing declarations -----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    added: tuple[Column, ...] = ()
    widened: tuple[tuple[Column, Column], ...] = ()  # (before, after)
    relaxed: tuple[Column, ...] = ()  # NOT NULL dropped

    def __bool__(self) -> bool:
        return bool(self.added or self.widened or self.relaxed)

    def describe(self) -> str:
        parts = [f"add {c.sql}" for c in self.added]
        parts += [f"widen {a.name} {a.type} → {b.type}" for a, b in self.widened]
        parts += [f"{c.name} may be empty" for c in self.relaxed]
        return "; ".join(parts)


def plan_change(before: FeatureTable, after: FeatureTable) -> Change:
    """The additive change from ``before`` to ``after``; :class:`DestructiveChange` otherwise."""
    q = after.qualified
    how = (
        "To do it deliberately, write a hand-written migration (`alembic revision` style, "
        "in schemas/migrations/versions/) that moves the data, then declare the result; or "
        "declare a new table and load it from the delivery again."
    )
    problems = []
    if before.partition_by != after.partition_by:
        problems.append(
            f"partitioning {before.partition_by or 'none'} → {after.partition_by or 'none'} "
            "(the rows are copied into a new table: a hand-written migration, with "
            "sdi.db.tables.partition_by_province_sql / unpartition_sql)"
        )
    if before.geometry != after.geometry:
        problems.append(f"geometry type {before.geometry} → {after.geometry}")
    for column in before.columns:
        if after.column(column.name) is None:
            problems.append(f"column {column.name} dropped (its values would be lost)")
    added: list[Column] = []
    widened: list[tuple[Column, Column]] = []
    relaxed: list[Column] = []
    for new in after.columns:
        old = before.column(new.name)
        if old is None:
            if new.not_null:
                problems.append(
                    f"new column {new.name} is NOT NULL (the existing rows have no value): "
                    "add it without required first"
                )
            added.append(new)
            continue
        if old.type != new.type:
            if (old.type, new.type) in WIDENINGS:
                widened.append((old, new))
            else:
                problems.append(
                    f"column {new.name} {old.type} → {new.type} (only widening is automatic: "
                    + ", ".join(f"{a} → {b}" for a, b in sorted(WIDENINGS) if a == old.type)
                    + ")"
                )
        if old.not_null and not new.not_null:
            relaxed.append(new)
        elif new.not_null and not old.not_null:
            problems.append(f"column {new.name} becomes NOT NULL (existing rows may be empty)")
    if problems:
        raise DestructiveChange(
            f"{q}: refused, the declared change would lose or reject data: "
            + "; ".join(problems)
            + ". "
            + how
        )
    return Change(tuple(added), tuple(widened), tuple(relaxed))


# -- generated revisions --------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedRevision:
    number: int
    revision: str
    path: Path
    table: FeatureTable


def _load_module(path: Path):  # a migration module
    spec = importlib.util.spec_from_file_location(f"sdi_generated_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_revisions(versions_dir: Path) -> list[GeneratedRevision]:
    """The generated revisions in ``versions_dir``, oldest first."""
    found = []
    for path in sorted(versions_dir.glob(f"{GENERATED_PREFIX}*.py")):
        match = _GENERATED_FILE.match(path.name)
        if not match:
            continue
        try:
            module = _load_module(path)
        except Exception as exc:  # a hand-edited file that no longer imports
            raise ConfigError(f"{path}: cannot read this generated revision: {exc}") from None
        found.append(GeneratedRevision(int(match.group(1)), module.revision, path, module.TABLE))
    return sorted(found, key=lambda r: r.number)


def declared_state(versions_dir: Path) -> dict[str, FeatureTable]:
    """Each generated table as its newest generated revision leaves it."""
    return {r.table.qualified: r.table for r in generated_revisions(versions_dir)}


def _q(text: str) -> str:
    """A Python string literal in the project's style (double quotes)."""
    return json.dumps(text, ensure_ascii=False)


def _repr_table(table: FeatureTable) -> str:
    columns = "".join(
        f"        Column({_q(c.name)}, {_q(c.type)}"
        + (", not_null=True" if c.not_null else "")
        + "),\n"
        for c in table.columns
    )
    comment = f"    comment={_q(table.comment)},\n" if table.comment else ""
    partition = f"    partition_by={_q(table.partition_by)},\n" if table.partition_by else ""
    return (
        f"FeatureTable(\n    {_q(table.qualified)},\n    {_q(table.geometry)},\n"
        f"    (\n{columns}    ),\n{comment}{partition})"
    )


_TEMPLATE = '''"""{message}

Generated by `sdi table sync` from {source};
review it and commit it with the job spec.
TABLE is the table's whole declared state after this revision: the next sync compares it
with the job spec. The DDL is sdi.db.tables' (the function the built-in tables use).

Revision ID: {revision}
Revises: {down_revision}
"""

from alembic import op

from sdi.db.tables import Column, FeatureTable, {functions}

revision = {revision}
down_revision = {down_revision}
branch_labels = None
depends_on = None

TABLE = {table}
{previous}

def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
'''


def revision_id(number: int, table: FeatureTable) -> str:
    return f"{GENERATED_PREFIX}{number:04d}_{table.name}"[:ALEMBIC_ID_LENGTH]


def render_revision(
    number: int,
    table: FeatureTable,
    previous: FeatureTable | None,
    down_revision: str | None,
    source: str,
) -> str:
    """The text of the generated revision that brings ``previous`` (None: nothing) to ``table``."""
    if previous is None:
        message = f"Create {table.qualified} ({table.geometry}), declared in a job spec"
        functions = "create_feature_table, drop_feature_table"
        prev, up, down = (
            "",
            "create_feature_table(op.execute, TABLE)",
            ("drop_feature_table(op.execute, TABLE)"),
        )
    else:
        change = plan_change(previous, table)
        message = f"Change {table.qualified}: {change.describe()}"
        functions = "alter_feature_table"
        prev = f"PREVIOUS = {_repr_table(previous)}\n"
        up = "alter_feature_table(op.execute, PREVIOUS, TABLE)"
        down = "alter_feature_table(op.execute, PREVIOUS, TABLE, reverse=True)"
    return _TEMPLATE.format(
        message=message,
        source=source,
        revision=_q(revision_id(number, table)),
        down_revision=_q(down_revision) if down_revision else "None",
        functions=functions,
        table=_repr_table(table),
        previous="\n" + prev if prev else "",
        upgrade=up,
        downgrade=down,
    )


@dataclass(frozen=True)
class Written:
    path: Path
    revision: str
    table: FeatureTable
    change: str  # "create" or the change's description


def sync_declared(
    tables: dict[str, tuple[FeatureTable, str]],
    versions_dir: Path,
    head: str | None,
    *,
    write: bool = True,
) -> list[Written]:
    """Write a revision for each declared table that differs from its generated state.

    ``tables``: qualified name → (declaration, where it was declared); ``head``: the current
    head revision the first new one follows. All changes are planned before anything is
    written: one destructive change writes nothing.
    """
    state = declared_state(versions_dir)
    numbers = [r.number for r in generated_revisions(versions_dir)]
    plans: list[tuple[FeatureTable, FeatureTable | None, str, str]] = []
    for qualified in sorted(tables):
        table, source = tables[qualified]
        previous = state.get(qualified)
        if previous is None:
            plans.append((table, None, source, "create"))
        elif previous != table:
            planned = plan_change(previous, table)
            if planned:
                plans.append((table, previous, source, planned.describe()))
    written = []
    number = max(numbers, default=0)
    for table, previous, source, change in plans:
        number += 1
        text = render_revision(number, table, previous, head, source)
        revision = revision_id(number, table)
        path = versions_dir / f"{GENERATED_PREFIX}{number:04d}_{table.name}.py"
        if write:
            path.write_text(text, encoding="utf-8")
        written.append(Written(path, revision, table, change))
        head = revision
    return written


# -- partitioning by province (issue 14) -----------------------------------------------------
# A national warehouse keeps the large feature tables (parcels, buildings: their history is
# in the same table, as closed versions) as PostgreSQL LIST partitions on ``province_code``:
# one partition per province, created on demand by etl.ensure_province_partition(), and a
# default partition for a code that has none yet. Primary and unique keys include the
# partition key (PostgreSQL requires it, and so would Citus: docs/citus.md).
PARTITION_KEYS: dict[str, str] = {"province": "province_code"}
PROVINCE_COLUMN = "province_code"
# Per partitioned table and province: the box around every geometry ever stored there (a
# superset, kept by a statement trigger), which lets the API turn a bbox into the provinces
# it can touch (partition pruning: sdi/api/provider.py).
EXTENTS_TABLE = "etl.partition_extents"


def province_support_sql() -> list[str]:
    """The functions and the extents table every province-partitioned table uses (0012b)."""
    return [
        f"""
        CREATE TABLE {EXTENTS_TABLE} (
            relation text NOT NULL,
            province_code varchar(2) NOT NULL,
            extent geometry(Geometry, 4326) NOT NULL,  -- a point when one point
            PRIMARY KEY (relation, province_code)
        )
        """,
        f"COMMENT ON TABLE {EXTENTS_TABLE} IS 'Per province-partitioned table and province: "
        "a box holding every geometry stored there (kept by the tables'' statement triggers)'",
        # The province of a commune code, from the communes layer (codes are national).
        """
        CREATE FUNCTION etl.province_of(commune text) RETURNS varchar
        LANGUAGE sql STABLE AS $$
            SELECT province_code FROM admin.communes
            WHERE commune_code = commune AND valid_to IS NULL AND province_code IS NOT NULL
            ORDER BY admin_vintage = '2025' DESC LIMIT 1
        $$
        """,
        r"""
        CREATE FUNCTION etl.ensure_province_partition(parent regclass, code text)
        RETURNS regclass LANGUAGE plpgsql
        -- as the tables' owner: the ETL role that calls it owns no table (sdi.db.roles)
        SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            nsp name;
            rel name;
            part text;
            def_part regclass;
            waiting boolean := false;
        BEGIN
            IF code IS NULL OR code !~ '^[0-9]{2}$' THEN
                RAISE EXCEPTION 'province code %: two digits expected', code;
            END IF;
            SELECT n.nspname, c.relname INTO nsp, rel
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
            part := format('%I.%I', nsp, rel || '_p' || code);
            IF to_regclass(part) IS NOT NULL THEN
                RETURN part::regclass;
            END IF;
            SELECT nullif(p.partdefid, 0)::regclass INTO def_part
            FROM pg_partitioned_table p WHERE p.partrelid = parent;
            IF def_part IS NOT NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE province_code = %L)',
                               def_part, code) INTO waiting;
            END IF;
            IF NOT waiting THEN
                EXECUTE format('CREATE TABLE %s PARTITION OF %s FOR VALUES IN (%L)',
                               part, parent, code);
            ELSE
                -- rows that waited in the default partition move to their province's own
                EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               part, parent);
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE province_code = %L '
                               'RETURNING *) INSERT INTO %s SELECT * FROM moved',
                               def_part, code, part);
                EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%L)',
                               parent, part, code);
            END IF;
            RETURN part::regclass;
        END
        $$
        """,
        # only the ETL role may call it (sdi.db.roles grants it)
        "REVOKE EXECUTE ON FUNCTION etl.ensure_province_partition(regclass, text) FROM PUBLIC",
        f"""
        CREATE FUNCTION etl.grow_partition_extents() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {EXTENTS_TABLE} AS e (relation, province_code, extent)
            SELECT TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, province_code,
                   ST_Envelope(ST_Extent(geom)::geometry)
            FROM new_rows GROUP BY province_code
            ON CONFLICT (relation, province_code) DO UPDATE
            SET extent = ST_Envelope(ST_Collect(e.extent, EXCLUDED.extent))
            WHERE NOT ST_Contains(e.extent, EXCLUDED.extent);
            RETURN NULL;
        END
        $$
        """,
    ]


def drop_province_support_sql() -> list[str]:
    return [
        "DROP FUNCTION IF EXISTS etl.grow_partition_extents()",
        "DROP FUNCTION IF EXISTS etl.ensure_province_partition(regclass, text)",
        "DROP FUNCTION IF EXISTS etl.province_of(text)",
        f"DROP TABLE IF EXISTS {EXTENTS_TABLE}",
    ]


def _move_rows_sql(old: str, qualified: str, insert: str) -> list[str]:
    """The rows of ``old`` into the new table ``qualified`` (by ``insert``), its version ids
    continued, its comment and privileges kept; ``old`` dropped (0012b both ways)."""
    return [
        insert,
        f"""
        SELECT setval(pg_get_serial_sequence('{qualified}', 'version_id'),
                      coalesce((SELECT max(version_id) FROM {qualified}), 0) + 1, false)
        """,
        f"""
        DO $$ BEGIN
            EXECUTE format('COMMENT ON TABLE {qualified} IS %L',
                           obj_description('{old}'::regclass, 'pg_class'));
        END $$
        """,
        _copy_privileges_sql(old, qualified),
        f"DROP TABLE {old}",
    ]


def _copy_privileges_sql(source: str, target: str) -> str:
    """Grant on ``target`` what is granted on ``source`` (table and column privileges):
    ``sdi db grants`` derives them from the layers, a migration must not lose them."""
    return f"""
    DO $$
    DECLARE g record;
    BEGIN
        FOR g IN SELECT a.privilege_type, a.grantee::regrole::text AS grantee
                 FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = '{source}'::regclass AND a.grantee <> 0
                   AND a.grantee <> c.relowner LOOP
            EXECUTE format('GRANT %s ON {target} TO %s', g.privilege_type, g.grantee);
        END LOOP;
        FOR g IN SELECT at.attname, a.privilege_type, a.grantee::regrole::text AS grantee
                 FROM pg_attribute at, aclexplode(at.attacl) a
                 WHERE at.attrelid = '{source}'::regclass AND at.attacl IS NOT NULL
                   AND NOT at.attisdropped
                   AND a.grantee <> 0 LOOP
            EXECUTE format('GRANT %s (%I) ON {target} TO %s',
                           g.privilege_type, g.attname, g.grantee);
        END LOOP;
    END
    $$
    """


def _feature_indexes_sql(qualified: str, key: str | None) -> list[str]:
    """0001's indexes of a feature table; with a partition key, its unique key includes it."""
    table = split_qualified(qualified)[1]
    unique = f"{key}, natural_key" if key else "natural_key"
    return [
        f"CREATE UNIQUE INDEX {table}_current_key ON {qualified} ({unique}) WHERE valid_to IS NULL",
        f"CREATE INDEX {table}_id ON {qualified} (id)",
        f"CREATE INDEX {table}_run ON {qualified} (run_id)",
        f"CREATE INDEX {table}_commune ON {qualified} (commune_code) WHERE valid_to IS NULL",
        f"CREATE INDEX {table}_geom ON {qualified} USING gist (geom)",
    ]


def _dependents_sql(qualified: str) -> tuple[list[str], list[str]]:
    """What pins a feature table's row type (its ``_current`` view and ``_as_of``
    function): dropped before the table is replaced and made again after."""
    drop = [
        f"DROP FUNCTION IF EXISTS {qualified}_as_of(timestamptz)",
        f"DROP VIEW IF EXISTS {qualified}_current",
    ]
    create = [
        f"CREATE VIEW {qualified}_current AS SELECT * FROM {qualified} WHERE valid_to IS NULL",
        as_of_function_sql(qualified),
    ]
    return drop, create


def _refuse_other_dependents_sql(qualified: str) -> str:
    """A view or function of someone else on the table would be lost: refuse, by name."""
    return f"""
    DO $$
    DECLARE found text;
    BEGIN
        SELECT string_agg(DISTINCT v.oid::regclass::text, ', ') INTO found
        FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid
        JOIN pg_class v ON v.oid = r.ev_class
        WHERE d.classid = 'pg_rewrite'::regclass
          AND d.refobjid IN ('{qualified}'::regclass, to_regclass('{qualified}_current'))
          AND v.oid NOT IN ('{qualified}'::regclass,
                            coalesce(to_regclass('{qualified}_current'), 0))
          AND v.relkind IN ('v', 'm');
        IF found IS NOT NULL THEN
            RAISE EXCEPTION 'views % depend on {qualified}: drop them first, they are not '
                'carried over when the table is partitioned or unpartitioned', found;
        END IF;
    END
    $$
    """


def partition_by_province_sql(
    qualified: str, fallback: str, *, has_column: bool = False
) -> list[str]:
    """Make an existing feature table LIST-partitioned on ``province_code``, data kept.

    The table is renamed, a partitioned one with the same columns (plus ``province_code``
    unless ``has_column``) takes its name, a partition is made for every province the
    communes layer knows and the fallback, the rows are copied (each row's province: its
    commune's, else ``fallback``, the deployment's province), then the old table is dropped
    and the indexes, the ``_current`` view, ``_as_of()``, the privileges and the extents
    trigger are made on the new one. Costs one copy of the table."""
    schema, table = split_qualified(qualified)
    if not re.fullmatch(r"[0-9]{2}", fallback):
        raise ConfigError(f"province code {fallback!r}: two digits expected")
    old = f"{schema}.{table}_unpartitioned"
    drop, create = _dependents_sql(qualified)
    key = PROVINCE_COLUMN
    column = "" if has_column else f", {key} varchar(2) NOT NULL"
    province = f"o.{key}" if has_column else f"coalesce(m.province_code, '{fallback}')"
    mapping = (
        "LEFT JOIN (SELECT DISTINCT ON (commune_code) commune_code, province_code "
        "FROM admin.communes WHERE valid_to IS NULL AND province_code IS NOT NULL "
        "ORDER BY commune_code, admin_vintage = '2025' DESC) m ON m.commune_code = o.commune_code"
    )
    return [
        _refuse_other_dependents_sql(qualified),
        *drop,
        f"ALTER TABLE {qualified} RENAME TO {table}_unpartitioned",
        f"ALTER SEQUENCE IF EXISTS {qualified}_version_id_seq "
        f"RENAME TO {table}_unpartitioned_version_id_seq",
        f"""
        CREATE TABLE {qualified} (
            LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
                INCLUDING COMMENTS INCLUDING STORAGE{column}
        ) PARTITION BY LIST ({key})
        """,
        f"ALTER TABLE {qualified} ADD PRIMARY KEY (version_id, {key})",
        # a writer that does not say the province (SQL of its own) gets the deployment's,
        # as a commune the communes layer does not know does in the ETL
        f"ALTER TABLE {qualified} ALTER COLUMN {key} SET DEFAULT '{fallback}'",
        f"CREATE TABLE {qualified}_default PARTITION OF {qualified} DEFAULT",
        f"""
        SELECT etl.ensure_province_partition('{qualified}'::regclass, code)
        FROM (SELECT province_code AS code FROM admin.communes
              WHERE province_code ~ '^[0-9]{{2}}$'
              UNION SELECT '{fallback}') c ORDER BY code
        """,
        *_move_rows_sql(
            old,
            qualified,
            f"""
            INSERT INTO {qualified} OVERRIDING SYSTEM VALUE
            SELECT o.*{"" if has_column else f", {province}"}
            FROM {old} o {"" if has_column else mapping}
            """,
        ),
        *_feature_indexes_sql(qualified, key),
        *create,
        *_extent_trigger_sql(qualified),
        f"""
        INSERT INTO {EXTENTS_TABLE} (relation, province_code, extent)
        SELECT '{qualified}', {key}, ST_Envelope(ST_Extent(geom)::geometry)
        FROM {qualified} GROUP BY {key}
        """,
        f"ANALYZE {qualified}",
    ]


def _extent_trigger_sql(qualified: str) -> list[str]:
    table = split_qualified(qualified)[1]
    return [
        f"""
        CREATE TRIGGER {table}_extents_insert AFTER INSERT ON {qualified}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION etl.grow_partition_extents()
        """,
        f"""
        CREATE TRIGGER {table}_extents_update AFTER UPDATE ON {qualified}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION etl.grow_partition_extents()
        """,
    ]


def unpartition_sql(qualified: str, *, drop_column: bool = True) -> list[str]:
    """The way back: one plain table with 0001's indexes, data kept (``province_code``
    dropped unless the table declared it)."""
    schema, table = split_qualified(qualified)
    old = f"{schema}.{table}_partitioned"
    drop, create = _dependents_sql(qualified)
    return [
        _refuse_other_dependents_sql(qualified),
        *drop,
        f"ALTER TABLE {qualified} RENAME TO {table}_partitioned",
        f"ALTER SEQUENCE IF EXISTS {qualified}_version_id_seq "
        f"RENAME TO {table}_partitioned_version_id_seq",
        f"""
        CREATE TABLE {qualified} (
            LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
                INCLUDING COMMENTS INCLUDING STORAGE
        )
        """,
        *_move_rows_sql(
            old, qualified, f"INSERT INTO {qualified} OVERRIDING SYSTEM VALUE SELECT * FROM {old}"
        ),
        *([f"ALTER TABLE {qualified} DROP COLUMN {PROVINCE_COLUMN}"] if drop_column else []),
        f"ALTER TABLE {qualified} ADD PRIMARY KEY (version_id)",
        *_feature_indexes_sql(qualified, None),
        *create,
        f"DELETE FROM {EXTENTS_TABLE} WHERE relation = '{qualified}'",
    ]
