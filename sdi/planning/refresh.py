"""Rebuild the derived planning and operations tables from the warehouse, in set-based SQL.

``refresh(conn, …)`` runs in the caller's transaction: the ETL calls it right after a load of
an input (``sdi/etl/hooks.py``), so a run marked ``succeeded`` has its derived layers up to
date and a failed refresh rolls the load back. Each table is rebuilt whole (DELETE + INSERT,
so readers keep seeing the previous rows until commit) under an EXCLUSIVE table lock that
serialises two concurrent refreshes without blocking readers.

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

from sdi.etl.codes import code_list
from sdi.hazard.model import ZONE_HAZARDS
from sdi.planning import model

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


@dataclass
class _Context:
    conn: psycopg.Connection
    run_id: int | None
    province_srid: int
    notes: list[str]
    temp_tables: list[str] = field(default_factory=list)  # built once per refresh, then dropped

    def exists(self, relation: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()[0]

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
# The zone of a parcel is the zone containing its interior point (ST_PointOnSurface: always
# inside the parcel, unlike the centroid). Driven from the zones, each with its permitted codes:
# a zone probes the parcels' GiST index with its box, and the cheap array test (codes not all
# permitted) runs before the point-in-zone geometry, so only possible conflicts pay for it.
# Where zones overlap, a parcel conflicting with several is listed once (lowest zone id); the
# de-duplication sorts ids only, and the parcels' columns are fetched afterwards.
_CONFLICTS = """
WITH rules (planned_use, permitted) AS (
    SELECT u, string_to_array(c, ',') FROM unnest(%(uses)s::text[], %(codes)s::text[]) AS t (u, c)
),
zones AS MATERIALIZED (
    SELECT z.id, z.geom, r.permitted
    FROM land.zoning_current z JOIN rules r ON r.planned_use = z.planned_land_use
),
hits AS (
    SELECT DISTINCT ON (p.id) p.id, zn.id AS zone_id
    FROM zones zn
    JOIN land.parcels_current p
      ON p.geom && zn.geom
     AND NOT (p.land_use_codes <@ zn.permitted)
     AND ST_Intersects(zn.geom, ST_PointOnSurface(p.geom))
    ORDER BY p.id, zn.id
)
INSERT INTO planning.land_use_conflicts (
    id, natural_key, commune_code, admin_vintage, sheet_no, parcel_no, land_use_codes,
    conflicting_codes, zone_code, zone_name, planned_land_use, plan_id, area_m2, run_id, geom)
SELECT p.id, p.natural_key, p.commune_code, p.admin_vintage, p.sheet_no, p.parcel_no,
       p.land_use_codes,
       ARRAY(SELECT DISTINCT code FROM unnest(p.land_use_codes) AS code
             WHERE code <> ALL (r.permitted) ORDER BY code),
       z.zone_code, z.zone_name, z.planned_land_use, z.plan_id,
       p.area_m2, %(run_id)s::bigint, p.geom
FROM hits h
JOIN land.zoning_current z ON z.id = h.zone_id
JOIN rules r ON r.planned_use = z.planned_land_use
JOIN land.parcels_current p ON p.id = h.id
"""


def _land_use_conflicts(ctx: _Context) -> int:
    compat = model.load_compatibility()
    uses = sorted(compat.permitted)
    inserted = ctx.conn.execute(
        _CONFLICTS,
        {
            "uses": uses,
            "codes": [",".join(sorted(compat.permitted[u])) for u in uses],
            "run_id": ctx.run_id,
        },
    )
    unassessed = ctx.conn.execute(
        "SELECT planned_land_use, count(*) FROM land.zoning_current "
        "WHERE planned_land_use IS NULL OR planned_land_use <> ALL (%s) GROUP BY 1 ORDER BY 1",
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
# geodesic distance is computed) and both layers anti-join them.
PAIRS_TABLE = "sdi_permit_building_pairs"
_PERMIT_PAIRS = f"""
CREATE TEMP TABLE {PAIRS_TABLE} ON COMMIT DROP AS
SELECT p.id AS permit_id, b.id AS building_id,
       (b.year_built IS NULL OR p.issued_on IS NULL
        OR p.issued_on <= make_date(b.year_built + %(tolerance_years)s, 12, 31)) AS date_fits
FROM construction.permits_current p
JOIN construction.buildings_current b
  ON b.geom && ST_Expand(p.geom, %(box_deg)s)
 AND (ST_Intersects(b.geom, p.geom)
      OR ST_DWithin(b.geom::geography, p.geom::geography, %(distance_m)s))
"""

_BUILDINGS_WITHOUT_PERMIT = f"""
INSERT INTO planning.buildings_without_permit (
    id, natural_key, commune_code, admin_vintage, building_code, name, use_type, floors,
    year_built, footprint_m2, category, run_id, geom)
SELECT b.id, b.natural_key, b.commune_code, b.admin_vintage, b.building_code, b.name,
       b.use_type, b.floors, b.year_built, b.footprint_m2,
       CASE WHEN b.year_built < %(register_since)s THEN 'built_before_register'
            ELSE 'no_permit' END,
       %(run_id)s::bigint, b.geom
FROM construction.buildings_current b
WHERE NOT EXISTS (
    SELECT 1 FROM {PAIRS_TABLE} m WHERE m.building_id = b.id AND m.date_fits
)
"""

# Age in whole months at the refresh (now() is the transaction's start). Any building at the
# location counts: the date rule is for naming a building's permit, not for a site's.
_STALLED_PERMITS = f"""
INSERT INTO planning.stalled_permits (
    id, natural_key, commune_code, admin_vintage, permit_no, issued_on, status, floors,
    gross_floor_area_m2, address, months_since_issue, run_id, geom)
SELECT p.id, p.natural_key, p.commune_code, p.admin_vintage, p.permit_no, p.issued_on,
       p.status, p.floors, p.gross_floor_area_m2, p.address,
       (extract(year FROM age(now()::date, p.issued_on)) * 12
        + extract(month FROM age(now()::date, p.issued_on)))::integer,
       %(run_id)s::bigint, p.geom
FROM construction.permits_current p
WHERE p.issued_on <= (now() - make_interval(months => %(months)s))::date
  AND NOT EXISTS (SELECT 1 FROM {PAIRS_TABLE} m WHERE m.permit_id = p.id)
"""


def _permit_parameters(ctx: _Context) -> dict[str, object]:
    """The rule's values; the permit-building pairs are found on first use in a refresh."""
    params = {
        "box_deg": model.PERMIT_MATCH_DISTANCE_M / _METRES_PER_DEGREE_LOWER_BOUND,
        "distance_m": model.PERMIT_MATCH_DISTANCE_M,
        "tolerance_years": model.PERMIT_AFTER_BUILT_TOLERANCE_YEARS,
        "register_since": model.PERMIT_REGISTER_SINCE_YEAR,
        "months": model.STALLED_AFTER_MONTHS,
        "run_id": ctx.run_id,
    }
    if PAIRS_TABLE not in ctx.temp_tables:
        ctx.conn.execute(_PERMIT_PAIRS, params)
        ctx.conn.execute(f"CREATE INDEX ON {PAIRS_TABLE} (building_id)")
        ctx.conn.execute(f"CREATE INDEX ON {PAIRS_TABLE} (permit_id)")
        ctx.conn.execute(f"ANALYZE {PAIRS_TABLE}")
        ctx.temp_tables.append(PAIRS_TABLE)
    return params


def _buildings_without_permit(ctx: _Context) -> int:
    return ctx.conn.execute(_BUILDINGS_WITHOUT_PERMIT, _permit_parameters(ctx)).rowcount


def _stalled_permits(ctx: _Context) -> int:
    return ctx.conn.execute(_STALLED_PERMITS, _permit_parameters(ctx)).rowcount


# -- parcels and buildings in hazard zones -----------------------------------------------------
# One row per (feature, zone it touches) for every hazard, then one aggregation per feature:
# a single pass that needs no join between hazards (robust to poor row estimates right after a
# load). Nested flood zones (10 ⊂ 50 ⊂ 100 years): a feature touching several gets the most
# frequent flood (smallest return period) and that zone's depth class; all its zones are
# listed. Landslide and storm surge: the worst class (ZONE_HAZARDS).
_FLOOD_HITS = """
    SELECT f.id, 'flood' AS hazard, z.return_period_years AS return_period, z.depth_class,
           z.zone_code, NULL::text AS class, NULL::double precision AS rank,
           NULL::integer AS class_order
    FROM hazard.flood_zones_current z JOIN {source} f ON ST_Intersects(f.geom, z.geom)"""
_ZONE_HITS = """
    SELECT f.id, {name}, NULL::integer, NULL::text, NULL::text, z.{column}::text,
           {rank}::double precision,
           array_position({classes}::text[], z.{column}::text)
    FROM {table} z JOIN {source} f ON ST_Intersects(f.geom, z.geom)"""
_WORST_CLASS = """(array_agg(class ORDER BY rank DESC NULLS LAST, class_order DESC NULLS LAST,
                  class DESC) FILTER (WHERE hazard = {name}))[1]"""


def _hazard_layer(ctx: _Context, target: str, source: str, columns: tuple[str, ...]) -> int:
    hits = [sql.SQL(_FLOOD_HITS).format(source=sql.SQL(source))]
    classes = []
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
        if column is None:
            classes.append(sql.SQL("NULL::text"))
            continue
        hits.append(
            sql.SQL(_ZONE_HITS).format(
                name=sql.Literal(hazard.name),
                column=sql.Identifier(column),
                rank=sql.SQL("z.{}").format(sql.Identifier(rank)) if rank else sql.SQL("NULL"),
                classes=sql.Literal(list(hazard.classes)),
                table=sql.SQL(relation),
                source=sql.SQL(source),
            )
        )
        classes.append(sql.SQL(_WORST_CLASS).format(name=sql.Literal(hazard.name)))
    own = sql.SQL(", ").join(map(sql.Identifier, columns))
    own_f = sql.SQL(", ").join(sql.SQL("f.{}").format(sql.Identifier(c)) for c in columns)
    class_columns = sql.SQL(", ").join(sql.Identifier(f"{h.name}_class") for h in ZONE_HAZARDS)
    return ctx.conn.execute(
        sql.SQL(
            """
            WITH hits AS ({hits}),
            per_feature AS (
                SELECT id, array_agg(DISTINCT hazard ORDER BY hazard) AS hazards,
                       min(return_period) AS return_period,
                       (array_agg(depth_class ORDER BY return_period, zone_code)
                          FILTER (WHERE hazard = 'flood'))[1] AS depth_class,
                       array_agg(zone_code ORDER BY return_period, zone_code)
                          FILTER (WHERE hazard = 'flood') AS zone_codes,
                       {classes}
                FROM hits GROUP BY id
            )
            INSERT INTO {target} (id, natural_key, commune_code, admin_vintage, {own},
                hazards, flood_return_period_years, flood_depth_class, flood_zone_codes,
                {class_columns}, run_id, geom)
            SELECT f.id, f.natural_key, f.commune_code, f.admin_vintage, {own_f},
                   h.hazards, h.return_period, h.depth_class, h.zone_codes, {class_columns},
                   %(run_id)s::bigint, f.geom
            FROM per_feature h JOIN {source} f USING (id)
            """
        ).format(
            hits=sql.SQL(" UNION ALL ").join(hits),
            classes=sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(c, sql.Identifier(f"{h.name}_class"))
                for c, h in zip(classes, ZONE_HAZARDS, strict=True)
            ),
            target=sql.SQL(target),
            own=own,
            class_columns=class_columns,
            own_f=own_f,
            source=sql.SQL(source),
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
# A parcel with several codes ("ODT+TMD") has its area split evenly between them, so areas add
# up to the parcelled area. Entropy: -Σ p·ln p / ln K over the K land-use groups (0: one group,
# 1: all groups in equal shares).
_INDICATORS = """
WITH groups (code, grp) AS (SELECT * FROM unnest(%(codes)s::text[], %(groups)s::text[])),
-- One pass over the parcels of known communes: area per commune and code. Each parcel adds
-- 1 / (its number of codes) per code, so the shares add up to the number of parcels.
code_areas AS (
    SELECT p.commune_code, p.admin_vintage, c.code,
           sum(coalesce(p.area_m2, ST_Area(ST_Transform(p.geom, %(srid)s)))
               / cardinality(p.land_use_codes)) AS area,
           sum(1.0 / cardinality(p.land_use_codes)) AS parcel_shares
    FROM land.parcels_current p
    JOIN admin.communes_current USING (commune_code, admin_vintage)
    CROSS JOIN LATERAL unnest(p.land_use_codes) AS c (code)
    GROUP BY 1, 2, 3
),
by_group AS (
    SELECT commune_code, admin_vintage, coalesce(g.grp, %(other)s) AS grp, sum(area) AS area
    FROM code_areas LEFT JOIN groups g USING (code)
    GROUP BY 1, 2, 3
),
mix AS (
    SELECT commune_code, admin_vintage,
           jsonb_object_agg(grp, round(area::numeric, 1) ORDER BY grp) AS by_group,
           sum(area) AS parcel_area,
           -sum((area / total) * ln(area / total)) FILTER (WHERE area > 0) / ln(%(k)s) AS mix
    FROM (SELECT *, sum(area) OVER (PARTITION BY commune_code, admin_vintage) AS total
          FROM by_group) s
    WHERE total > 0
    GROUP BY 1, 2
),
green AS (
    SELECT commune_code, admin_vintage, sum(area) AS area
    FROM code_areas WHERE code = ANY (%(green)s::text[])
    GROUP BY 1, 2
),
parcels AS (
    SELECT commune_code, admin_vintage, round(sum(parcel_shares))::integer AS n
    FROM code_areas GROUP BY 1, 2
),
buildings AS (
    SELECT b.commune_code, b.admin_vintage, count(*) AS n,
           sum(coalesce(b.footprint_m2, ST_Area(ST_Transform(b.geom, %(srid)s)))) AS footprint
    FROM construction.buildings_current b
    JOIN admin.communes_current USING (commune_code, admin_vintage)
    GROUP BY 1, 2
)
INSERT INTO planning.commune_indicators (
    id, natural_key, commune_code, admin_vintage, commune_name, city, commune_area_m2,
    parcels, parcel_area_m2, buildings, building_footprint_m2, built_up_ratio,
    building_density_per_ha, green_public_area_m2, green_public_share, land_use_mix,
    land_use_area_by_group_m2, run_id, geom)
SELECT c.id, c.natural_key, c.commune_code, c.admin_vintage, c.commune_name,
       nullif(c.city, ''), c.area_m2,
       coalesce(p.n, 0), coalesce(m.parcel_area, 0),
       coalesce(b.n, 0), coalesce(b.footprint, 0),
       b.footprint / nullif(m.parcel_area, 0),
       coalesce(b.n, 0) / nullif(m.parcel_area / 10000.0, 0),
       coalesce(g.area, 0), coalesce(g.area, 0) / nullif(m.parcel_area, 0),
       m.mix, coalesce(m.by_group, '{}'),
       %(run_id)s::bigint, c.geom
FROM admin.communes_current c
LEFT JOIN parcels p USING (commune_code, admin_vintage)
LEFT JOIN mix m USING (commune_code, admin_vintage)
LEFT JOIN green g USING (commune_code, admin_vintage)
LEFT JOIN buildings b USING (commune_code, admin_vintage)
"""


def _commune_indicators(ctx: _Context) -> int:
    land_use = code_list("land_use")
    groups = land_use.group_of()
    return ctx.conn.execute(
        _INDICATORS,
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
def _count_by(table: str, column: str) -> str:
    """Per commune: the features of ``table`` and a {value: count} object of ``column``."""
    return f"""
    SELECT commune_code, admin_vintage, sum(n)::integer AS total,
           jsonb_object_agg(value, n ORDER BY value) AS by_value
    FROM (SELECT commune_code, admin_vintage, coalesce({column}, 'unknown') AS value,
                 count(*) AS n
          FROM {table} GROUP BY 1, 2, 3) s
    GROUP BY 1, 2"""


# The latest reading of each parameter of each sensor: one backward scan of the readings'
# primary key (sensor_code, parameter, observed_at) per sensor and parameter.
_LATEST_READINGS = """,
latest AS (
    SELECT s.commune_code, s.admin_vintage, s.kind, s.sensor_code, r.parameter, r.value,
           r.unit, r.observed_at
    FROM utility.env_sensors_current s
    CROSS JOIN LATERAL unnest(s.parameters) AS sp (parameter)
    CROSS JOIN LATERAL (
        SELECT r.parameter, r.value, r.unit, r.observed_at FROM utility.env_readings r
        WHERE r.sensor_code = s.sensor_code AND r.parameter = sp.parameter
        ORDER BY r.observed_at DESC LIMIT 1
    ) r
),
per_sensor AS (
    SELECT commune_code, admin_vintage, kind, sensor_code,
           jsonb_build_object(
               'observed_at', max(observed_at),
               'values', jsonb_object_agg(parameter, value ORDER BY parameter),
               'units', jsonb_object_agg(parameter, unit ORDER BY parameter)
                        FILTER (WHERE unit IS NOT NULL)) AS latest,
           max(observed_at) AS observed_at
    FROM latest GROUP BY 1, 2, 3, 4
),
readings AS (
    SELECT commune_code, admin_vintage,
           coalesce(jsonb_object_agg(sensor_code, latest ORDER BY sensor_code)
                    FILTER (WHERE kind = 'water_quality'), '{}') AS water,
           coalesce(jsonb_object_agg(sensor_code, latest ORDER BY sensor_code)
                    FILTER (WHERE kind = 'air_quality'), '{}') AS air,
           max(observed_at) AS latest_at
    FROM per_sensor GROUP BY 1, 2
)"""
_NO_READINGS = """,
readings AS (
    SELECT NULL::text AS commune_code, NULL::text AS admin_vintage, '{}'::jsonb AS water,
           '{}'::jsonb AS air, NULL::timestamptz AS latest_at WHERE false
)"""

# Open incidents (status <> 'resolved') by age since the report: < 1 day, 1–7 days, > 7 days.
# Incidents are 2025-vintage (they are reported now), so they join the communes on the code.
_INCIDENTS = """,
incident_ages AS (
    SELECT commune_code, coalesce(category, 'other') AS category,
           CASE WHEN reported_at > now() - interval '1 day' THEN 'lt_1d'
                WHEN reported_at > now() - interval '7 days' THEN '1_7d'
                ELSE 'gt_7d' END AS age
    FROM ops.incidents WHERE status IS DISTINCT FROM 'resolved'
),
incident_categories AS (
    SELECT commune_code, category,
           jsonb_build_object('open', count(*),
                              'lt_1d', count(*) FILTER (WHERE age = 'lt_1d'),
                              '1_7d', count(*) FILTER (WHERE age = '1_7d'),
                              'gt_7d', count(*) FILTER (WHERE age = 'gt_7d')) AS counts
    FROM incident_ages GROUP BY 1, 2
),
incidents AS (
    SELECT a.commune_code, count(*) AS open,
           count(*) FILTER (WHERE age = 'lt_1d') AS lt_1d,
           count(*) FILTER (WHERE age = '1_7d') AS d1_7,
           count(*) FILTER (WHERE age = 'gt_7d') AS gt_7d,
           (SELECT jsonb_object_agg(category, counts ORDER BY category)
            FROM incident_categories c WHERE c.commune_code = a.commune_code) AS by_category
    FROM incident_ages a GROUP BY 1
)"""
_NO_INCIDENTS = """,
incidents AS (
    SELECT NULL::text AS commune_code, 0 AS open, 0 AS lt_1d, 0 AS d1_7, 0 AS gt_7d,
           '{}'::jsonb AS by_category WHERE false
)"""

_SUMMARY_COUNTS = f"""
WITH lamps AS ({_count_by("utility.street_lamps_current", "status")}),
wifi AS ({_count_by("utility.wifi_hotspots_current", "status")}),
cameras AS ({_count_by("utility.cameras_current", "status")}),
camera_kinds AS ({_count_by("utility.cameras_current", "kind")}),
sensors AS ({_count_by("utility.env_sensors_current", "status")})"""
_SUMMARY_INSERT = """
INSERT INTO ops.commune_summary (
    id, natural_key, commune_code, admin_vintage, commune_name, city,
    lamps, lamps_on, lamps_off, lamps_fault, lamps_maintenance, lamps_by_status,
    wifi_hotspots, wifi_active, wifi_offline,
    cameras, cameras_online, cameras_offline, cameras_by_kind,
    sensors, sensors_online, water_quality, air_quality, latest_reading_at,
    incidents_open, incidents_open_lt_1d, incidents_open_1_7d, incidents_open_gt_7d,
    incidents_by_category, run_id, geom)
SELECT c.id, c.natural_key, c.commune_code, c.admin_vintage, c.commune_name,
       nullif(c.city, ''),
       coalesce(l.total, 0), coalesce((l.by_value ->> 'on')::integer, 0),
       coalesce((l.by_value ->> 'off')::integer, 0),
       coalesce((l.by_value ->> 'fault')::integer, 0),
       coalesce((l.by_value ->> 'maintenance')::integer, 0), coalesce(l.by_value, '{}'),
       coalesce(w.total, 0), coalesce((w.by_value ->> 'active')::integer, 0),
       coalesce((w.by_value ->> 'offline')::integer, 0),
       coalesce(cam.total, 0), coalesce((cam.by_value ->> 'online')::integer, 0),
       coalesce((cam.by_value ->> 'offline')::integer, 0), coalesce(k.by_value, '{}'),
       coalesce(s.total, 0), coalesce((s.by_value ->> 'online')::integer, 0),
       coalesce(r.water, '{}'), coalesce(r.air, '{}'), r.latest_at,
       coalesce(i.open, 0), coalesce(i.lt_1d, 0), coalesce(i.d1_7, 0), coalesce(i.gt_7d, 0),
       coalesce(i.by_category, '{}'), %(run_id)s::bigint, c.geom
FROM admin.communes_current c
LEFT JOIN lamps l USING (commune_code, admin_vintage)
LEFT JOIN wifi w USING (commune_code, admin_vintage)
LEFT JOIN cameras cam USING (commune_code, admin_vintage)
LEFT JOIN camera_kinds k USING (commune_code, admin_vintage)
LEFT JOIN sensors s USING (commune_code, admin_vintage)
LEFT JOIN readings r USING (commune_code, admin_vintage)
LEFT JOIN incidents i ON i.commune_code = c.commune_code AND c.admin_vintage = '2025'
"""


def _commune_summary(ctx: _Context) -> int:
    readings = _LATEST_READINGS if ctx.exists("utility.env_readings") else _NO_READINGS
    incidents = _INCIDENTS if ctx.exists("ops.incidents") else _NO_INCIDENTS
    return ctx.conn.execute(
        _SUMMARY_COUNTS + readings + incidents + _SUMMARY_INSERT, {"run_id": ctx.run_id}
    ).rowcount


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
    return conn.execute(
        "SELECT to_regclass('planning.refreshes') IS NOT NULL "
        "AND to_regclass('ops.commune_summary') IS NOT NULL"
    ).fetchone()[0]


def refresh(
    conn: psycopg.Connection,
    *,
    run_id: int | None = None,
    trigger: str = "manual",
    layers: Iterable[str] | None = None,
) -> RefreshResult:
    """Rebuild the derived tables ``layers`` (default: all) inside the caller's transaction.

    ``run_id`` is the ETL run (or ``sdi planning refresh`` run) recorded with the rows;
    ``trigger`` says why (the loaded table, 'manual', 'incidents'). A warehouse not yet
    upgraded to migration 0008 is left alone (``result.skipped`` says so).
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
    ctx = _Context(conn, run_id, get_settings().province_srid, result.notes)
    with conn.transaction():
        for table in wanted:
            started = time.perf_counter()
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.SQL(table)))
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(table)))
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
