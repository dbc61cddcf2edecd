"""Rebuild the derived planning and operations tables from the warehouse, in set-based SQL.

``refresh(conn, …)`` runs in the caller's transaction: the ETL calls it right after a load of
an input (``sdi/etl/hooks.py``), so a run marked ``succeeded`` has its derived layers up to
date and a failed refresh rolls the load back. Each table is rebuilt (DELETE + INSERT, so
readers keep seeing the previous rows until commit) under an EXCLUSIVE table lock that
serialises two concurrent refreshes without blocking readers.

After a load of parcels or buildings (:data:`SCOPED_INPUTS`) only the rows of the communes
the load touched are rebuilt (``communes=``; in a national warehouse, one province's
delivery leaves the other provinces' derived rows alone): a parcel's conflicts, hazards and
its commune's indicators depend on that parcel and its commune only. Stalled permits
depend on buildings within ``PERMIT_MATCH_DISTANCE_M`` of a permit, which may lie in the
next commune: they are rebuilt for the touched communes and their neighbours
(:class:`Scope`). Any other load rebuilds the tables whole.

Spatial predicates compare the stored, GiST-indexed EPSG:4326 columns; distances are measured
on the spheroid (geography) after an index-friendly bounding-box pre-filter, and areas come
from the legal ``area_m2`` computed at load time in the province's VN-2000 TM-3 CRS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

import sdi.sql
from sdi.etl.codes import code_list
from sdi.hazard.model import ZONE_HAZARDS
from sdi.planning import model

PACKAGE = "sdi.planning"  # its sql/ folder holds the statements


def _query(name: str) -> sql.SQL:
    return sdi.sql.query(PACKAGE, name)


# A degree is at least 55 km (longitude up to 60° latitude): a box of d / 55,000 degrees around
# a geometry holds everything within d metres; the exact test then runs on the spheroid.
_METRES_PER_DEGREE_LOWER_BOUND = 55_000.0


@dataclass
class RefreshResult:
    """What one refresh did: rows and seconds per derived table, and notes for people."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was refreshed

    def summary(self) -> str:
        """One line, e.g. 'planning: land_use_conflicts 812, … in 0.42 s'."""
        if self.skipped:
            return f"planning: skipped ({self.skipped})"
        what = ", ".join(f"{t.split('.')[1]} {n}" for t, n in self.rows.items())
        line = f"planning: {what} in {sum(self.seconds.values()):.2f} s"
        return line + (f" ({'; '.join(self.notes)})" if self.notes else "")


# Loads whose changes reach derived rows only in the communes of the features they touched.
SCOPED_INPUTS = frozenset({"land.parcels", "construction.buildings"})
# Derived table → which communes a scoped refresh rebuilds: the touched ones, or those and
# their neighbours (a permit's stall depends on buildings up to 50 m away). Others: whole.
SCOPE_OF_TABLE = {
    "planning.land_use_conflicts": "touched",
    "planning.buildings_without_permit": "touched",
    "planning.hazard_parcels": "touched",
    "planning.hazard_buildings": "touched",
    "planning.commune_indicators": "touched",
    "planning.stalled_permits": "near",
}


@dataclass(frozen=True)
class Scope:
    """The communes a scoped refresh works on: ``touched`` by the load, ``near`` (those and
    their neighbours within the permit distance), ``around`` (``near`` and theirs: every
    building within the distance of a permit in ``near``), and the provinces of ``around``
    (the partitions of a province-partitioned table to read)."""

    touched: list[str]
    near: list[str]
    around: list[str]
    provinces: list[str]


def _neighbours(conn: psycopg.Connection, communes: list[str], box_deg: float) -> list[str]:
    """``communes`` and those whose polygon comes within ``box_deg`` of theirs."""
    cursor = conn.execute(
        "SELECT coalesce(array_agg(DISTINCT n.commune_code), '{}') "
        "FROM admin.communes_current c JOIN admin.communes_current n "
        "ON n.geom && ST_Expand(c.geom, %s) WHERE c.commune_code = ANY(%s)",
        (box_deg, communes),
    )
    return sorted({*communes, *sdi.sql.one(cursor)[0]})


def scope_of(conn: psycopg.Connection, communes: Iterable[str], fallback_province: str) -> Scope:
    touched = sorted(set(communes))
    box = model.PERMIT_MATCH_DISTANCE_M / _METRES_PER_DEGREE_LOWER_BOUND
    near = _neighbours(conn, touched, box)
    around = _neighbours(conn, near, box)
    known: dict[str, str] = dict(
        conn.execute(
            "SELECT DISTINCT commune_code, province_code FROM admin.communes_current "
            "WHERE commune_code = ANY(%s) AND province_code IS NOT NULL",
            (around,),
        ).fetchall()
    )
    provinces = set(known.values())
    if len(known) < len(around):  # a commune the layer does not know: the fallback's rows
        provinces.add(fallback_province)
    return Scope(touched, near, around, sorted(provinces))


def _most_provinces(conn: psycopg.Connection, scope: Scope) -> bool:
    """Whether the communes a load touched lie in more than half of the provinces the
    communes layer knows."""
    touched, known = sdi.sql.one(
        conn.execute(
            "SELECT count(DISTINCT province_code) FILTER (WHERE commune_code = ANY(%s)), "
            "count(DISTINCT province_code) FROM admin.communes_current "
            "WHERE province_code IS NOT NULL",
            (scope.touched,),
        )
    )
    return 2 * touched > max(known, 1)


@dataclass
class _Context:
    conn: psycopg.Connection
    run_id: int | None
    province_srid: int
    notes: list[str]
    temp_tables: list[str] = field(default_factory=list)  # built once per refresh, then dropped
    scope: Scope | None = None
    level: str = "touched"  # the scope of the table being built (SCOPE_OF_TABLE)

    def relation(self, name: str, level: str | None = None) -> sql.Composable:
        """``name`` (a ``_current`` view), or in a scoped refresh its rows in the communes
        of ``level`` (default: the table's), read from their provinces' partitions only."""
        identifier = sql.Identifier(*name.split("."))
        if self.scope is None:
            return identifier
        communes = getattr(self.scope, level or self.level)
        condition = sql.SQL("commune_code = ANY({}::text[])").format(sql.Literal(communes))
        if "province_code" in self.columns(name) and name != "admin.communes_current":
            condition = sql.SQL("{} AND province_code = ANY({}::text[])").format(
                condition, sql.Literal(self.scope.provinces)
            )
        return sql.SQL("(SELECT * FROM {} WHERE {})").format(identifier, condition)

    def exists(self, relation: str) -> bool:
        return sdi.sql.one(self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)))[0]

    def columns(self, relation: str) -> set[str]:
        schema, table = relation.split(".")
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
        }


# -- land use in conflict with the zoning plan -------------------------------------------------


def _land_use_conflicts(ctx: _Context) -> int:
    compat = model.load_compatibility()
    uses = sorted(compat.permitted)
    parcels = ctx.relation("land.parcels_current")
    near_parcels: sql.Composable = sql.SQL("true")
    if ctx.scope is not None:  # the box of the scoped parcels, computed once
        near_parcels = sql.SQL(
            "z.geom && (SELECT ST_SetSRID(ST_Extent(s.geom)::geometry, max(ST_SRID(s.geom))) "
            "FROM {} s)"
        ).format(parcels)
    inserted = ctx.conn.execute(
        _query("land_use_conflicts").format(parcels=parcels, near_parcels=near_parcels),
        {
            "uses": uses,
            "codes": [",".join(sorted(compat.permitted[u])) for u in uses],
            "run_id": ctx.run_id,
        },
    )
    unassessed = ctx.conn.execute(  # of the zones the refresh concerns (near_parcels)
        sql.SQL(
            "SELECT planned_land_use, count(*) FROM land.zoning_current z "
            "WHERE (planned_land_use IS NULL OR planned_land_use <> ALL (%s)) AND {} "
            "GROUP BY 1 ORDER BY 1"
        ).format(near_parcels),
        (uses,),
    ).fetchall()
    if unassessed:
        ctx.notes.append(
            "zones not assessed (planned use not in etl/codes/zoning_compatibility.yml): "
            + ", ".join(f"{use or 'none'} ×{n}" for use, n in unassessed)
        )
    return inserted.rowcount


# -- buildings and permits ---------------------------------------------------------------------
# One rule matches a permit (alias p) and a building (alias b), both ways (docs/planning.md):
# the pairs within the distance are found once per refresh (one GiST probe of the buildings per
# permit; most permits lie inside their footprint, so the planar test settles them before the
# geodesic distance is computed) and both layers anti-join them (sql/permit_pairs.sql and the
# two layers' files name the table).
PAIRS_TABLE = "sdi_permit_building_pairs"


def _permit_parameters(ctx: _Context) -> dict[str, object]:
    """The rule's values; the permit-building pairs are found on first use in a refresh."""
    params: dict[str, object] = {
        "box_deg": model.PERMIT_MATCH_DISTANCE_M / _METRES_PER_DEGREE_LOWER_BOUND,
        "distance_m": model.PERMIT_MATCH_DISTANCE_M,
        "tolerance_years": model.PERMIT_AFTER_BUILT_TOLERANCE_YEARS,
        "register_since": model.PERMIT_REGISTER_SINCE_YEAR,
        "months": model.STALLED_AFTER_MONTHS,
        "run_id": ctx.run_id,
    }
    if PAIRS_TABLE not in ctx.temp_tables:
        pairs = sql.Identifier(PAIRS_TABLE)
        # scoped: the permits near the touched communes, and every building near them
        statement = _query("permit_pairs").format(
            permits=ctx.relation("construction.permits_current", "near"),
            buildings=ctx.relation("construction.buildings_current", "around"),
        )
        ctx.conn.execute(statement, params)
        ctx.conn.execute(sql.SQL("CREATE INDEX ON {} (building_id)").format(pairs))
        ctx.conn.execute(sql.SQL("CREATE INDEX ON {} (permit_id)").format(pairs))
        ctx.conn.execute(sql.SQL("ANALYZE {}").format(pairs))
        ctx.temp_tables.append(PAIRS_TABLE)
    return params


def _buildings_without_permit(ctx: _Context) -> int:
    params = _permit_parameters(ctx)
    buildings = ctx.relation("construction.buildings_current")
    statement = _query("buildings_without_permit").format(buildings=buildings)
    return ctx.conn.execute(statement, params).rowcount


def _stalled_permits(ctx: _Context) -> int:
    params = _permit_parameters(ctx)
    permits = ctx.relation("construction.permits_current")
    return ctx.conn.execute(_query("stalled_permits").format(permits=permits), params).rowcount


# -- parcels and buildings in hazard zones -----------------------------------------------------


def _hazard_layer(ctx: _Context, target: str, source: str, columns: tuple[str, ...]) -> int:
    source_id = ctx.relation(source)
    hits = [_query("hazard_hits_flood").format(source=source_id)]
    classes: list[sql.Composable] = []
    for hazard in ZONE_HAZARDS:
        relation = next(
            (r for r in (f"{hazard.table}_current", hazard.table) if ctx.exists(r)), None
        )
        available = ctx.columns(hazard.table) if relation else set()
        column = next((c for c in hazard.class_columns if c in available), None)
        rank = next((c for c in hazard.rank_columns if c in available), None)
        if relation and column is None:
            ctx.notes.append(
                f"{hazard.table} has none of the class columns "
                f"{', '.join(hazard.class_columns)}: not used"
            )
        if relation is None or column is None:  # no relation: no column either
            classes.append(sql.SQL("NULL::text"))
            continue
        hits.append(
            _query("hazard_hits_zone").format(
                name=sql.Literal(hazard.name),
                column=sql.Identifier(column),
                rank=sql.SQL("z.{}").format(sql.Identifier(rank)) if rank else sql.SQL("NULL"),
                classes=sql.Literal(list(hazard.classes)),
                table=sql.Identifier(*relation.split(".")),
                source=source_id,
            )
        )
        classes.append(_query("hazard_worst_class").format(name=sql.Literal(hazard.name)))
    own = sql.SQL(", ").join(map(sql.Identifier, columns))
    own_f = sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in columns)
    class_columns = sql.SQL(", ").join(sql.Identifier(f"{h.name}_class") for h in ZONE_HAZARDS)
    return ctx.conn.execute(
        _query("hazard_layer").format(
            hits=sql.SQL(" UNION ALL ").join(hits),
            classes=sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(c, sql.Identifier(f"{h.name}_class"))
                for c, h in zip(classes, ZONE_HAZARDS, strict=True)
            ),
            target=sql.Identifier(*target.split(".")),
            own=own,
            class_columns=class_columns,
            own_f=own_f,
            source=source_id,
        ),
        {"run_id": ctx.run_id},
    ).rowcount


def _hazard_parcels(ctx: _Context) -> int:
    return _hazard_layer(
        ctx,
        "planning.hazard_parcels",
        "land.parcels_current",
        ("sheet_no", "parcel_no", "land_use_codes", "area_m2"),
    )


def _hazard_buildings(ctx: _Context) -> int:
    return _hazard_layer(
        ctx,
        "planning.hazard_buildings",
        "construction.buildings_current",
        ("building_code", "name", "use_type", "floors", "footprint_m2"),
    )


# -- indicators per commune --------------------------------------------------------------------


def _commune_indicators(ctx: _Context) -> int:
    land_use = code_list("land_use")
    groups = land_use.group_of()
    return ctx.conn.execute(
        _query("commune_indicators").format(
            parcels=ctx.relation("land.parcels_current"),
            buildings=ctx.relation("construction.buildings_current"),
            communes=ctx.relation("admin.communes_current"),
        ),
        {
            "codes": list(groups),
            "groups": list(groups.values()),
            "other": land_use.ungrouped,
            "k": len(land_use.groups),
            "green": list(model.GREEN_PUBLIC_CODES),
            "srid": ctx.province_srid,
            "run_id": ctx.run_id,
        },
    ).rowcount


# -- operations-centre summary -----------------------------------------------------------------
def _count_by(table: str, column: str) -> sql.Composable:
    """Per commune: the features of ``table`` and a {value: count} object of ``column``."""
    return _query("count_by").format(
        table=sql.Identifier(*table.split(".")), column=sql.Identifier(column)
    )


def _commune_summary(ctx: _Context) -> int:
    readings = "readings" if ctx.exists("utility.env_readings") else "no_readings"
    incidents = "incidents" if ctx.exists("ops.incidents") else "no_incidents"
    statement = _query("commune_summary").format(
        lamps=_count_by("utility.street_lamps_current", "status"),
        wifi=_count_by("utility.wifi_hotspots_current", "status"),
        cameras=_count_by("utility.cameras_current", "status"),
        camera_kinds=_count_by("utility.cameras_current", "kind"),
        sensors=_count_by("utility.env_sensors_current", "status"),
        readings=_query(f"summary_{readings}"),
        incidents=_query(f"summary_{incidents}"),
    )
    return ctx.conn.execute(statement, {"run_id": ctx.run_id}).rowcount


# -- the registry and the refresh --------------------------------------------------------------
BUILDERS: dict[str, Callable[[_Context], int]] = {
    "planning.land_use_conflicts": _land_use_conflicts,
    "planning.buildings_without_permit": _buildings_without_permit,
    "planning.stalled_permits": _stalled_permits,
    "planning.hazard_parcels": _hazard_parcels,
    "planning.hazard_buildings": _hazard_buildings,
    "planning.commune_indicators": _commune_indicators,
    "ops.commune_summary": _commune_summary,
}
assert set(BUILDERS) == set(model.LAYER_INPUTS), "every derived table needs inputs and SQL"


def installed(conn: psycopg.Connection) -> bool:
    """Whether the warehouse has the derived tables (migration 0008)."""
    cursor = conn.execute(
        "SELECT to_regclass('planning.refreshes') IS NOT NULL "
        "AND to_regclass('ops.commune_summary') IS NOT NULL"
    )
    return sdi.sql.one(cursor)[0]


def refresh(
    conn: psycopg.Connection,
    *,
    run_id: int | None = None,
    trigger: str = "manual",
    layers: Iterable[str] | None = None,
    communes: Iterable[str] | None = None,
) -> RefreshResult:
    """Rebuild the derived tables ``layers`` (default: all) inside the caller's transaction.

    ``run_id`` is the ETL run (or ``sdi planning refresh`` run) recorded with the rows;
    ``trigger`` says why (the loaded table, 'manual', 'incidents'). A warehouse not yet
    upgraded to migration 0008 is left alone (``result.skipped`` says so). ``communes``: rebuild
    only what derives from the features of these communes (the tables of
    :data:`SCOPE_OF_TABLE`; the others whole) — for a load of :data:`SCOPED_INPUTS`.
    """
    from sdi.settings import get_settings

    result = RefreshResult()
    if not installed(conn):
        result.skipped = "warehouse not upgraded to migration 0008"
        return result
    wanted = list(layers) if layers is not None else list(BUILDERS)
    unknown = [t for t in wanted if t not in BUILDERS]
    if unknown:
        raise ValueError(
            f"unknown derived table(s) {', '.join(unknown)}; known: {', '.join(BUILDERS)}"
        )
    settings = get_settings()
    ctx = _Context(conn, run_id, settings.province_srid, result.notes)
    scope = scope_of(conn, communes, settings.province_code) if communes is not None else None
    if scope is not None and _most_provinces(conn, scope):
        # A load over most provinces (a first national load; every load of a one-province
        # deployment): the per-commune filters would cost more than they save, and the
        # whole rebuild's plans are the tuned ones (docs/planning.md "Speed").
        result.notes.append(f"{len(scope.touched)} communes touched: rebuilt whole")
        scope = None
    with conn.transaction():
        for table in wanted:
            started = time.perf_counter()
            table_id = sql.Identifier(*table.split("."))
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table_id))
            ctx.scope = scope if table in SCOPE_OF_TABLE else None
            ctx.level = SCOPE_OF_TABLE.get(table, "touched")
            if ctx.scope is None:
                conn.execute(sql.SQL("DELETE FROM {}").format(table_id))
            else:
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE commune_code = ANY(%s)").format(table_id),
                    (getattr(ctx.scope, ctx.level),),
                )
            result.rows[table] = BUILDERS[table](ctx)
            result.seconds[table] = time.perf_counter() - started
            conn.execute(
                "INSERT INTO planning.refreshes (layer, run_id, trigger, rows, duration_ms) "
                "VALUES (%s, %s, %s, %s, %s)",
                (table, run_id, trigger, result.rows[table], result.seconds[table] * 1000),
            )
        # A later refresh in the same transaction must see the data as it is then.
        for temp in ctx.temp_tables:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(temp)))
    return result


def refresh_operations(conn: psycopg.Connection, *, trigger: str = "incidents") -> RefreshResult:
    """Rebuild the operations-centre summary (``ops.commune_summary``) now.

    For writers of operations data outside the ETL — the incidents API calls it after each
    create or status change, in its own transaction, so the open-incident counts follow.
    Costs a few milliseconds at demo scale.
    """
    return refresh(conn, trigger=trigger, layers=model.OPERATIONS_LAYERS)
