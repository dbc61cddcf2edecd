"""Recompute the flood warnings from the warehouse: levels, zones, exposure, versions, events.

``recompute(conn, run_id)`` runs inside the caller's transaction (the ETL runner calls it
right after merging a load of an input table, so a failed recompute rolls the load back too)
and does everything in PostGIS:

1. the state of every gauge: its latest reading (by ``observed_at``: a late reading older than
   the latest never changes it), the alarm level that reading reaches, since when the gauge is
   at that level and at alarm level I (the first reading of the current unbroken run of
   readings at or above the threshold), and the peak of the episode;
2. for gauges at level I or more, the linked flood zones for that level
   (``model.LEVEL_RETURN_PERIOD_YEARS``), unioned;
3. what lies in that area: buildings (by use, with a resident estimate), parcels (by
   land-use group, with the area inside the zone in VN-2000), critical facilities, street
   lamps, water pipes (length inside the zone in VN-2000) and cameras;
4. the difference with the current warnings: a changed warning gets a new version (the old one
   is closed, kept), a raise, escalation, de-escalation or clear is written to the event log.

Running it twice changes nothing the second time. Spatial predicates compare the stored
(EPSG:4326, GiST-indexed) columns with the zone as stored; lengths and areas are measured in
the province's VN-2000 TM-3 CRS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from sdi.etl.codes import code_list
from sdi.hazard import model
from sdi.settings import Settings, get_settings

_TEMP_TABLES = (
    "sdi_gauge_state",
    "sdi_warning_new",
    "sdi_warning_zone",
    "sdi_exposed_buildings",
    "sdi_exposed_parcels",
    "sdi_facility_parcels",
    "sdi_facility_buildings",
    "sdi_exposed_facilities",
    "sdi_warning_next",
    "sdi_warning_events",
)


@dataclass
class RecomputeResult:
    """What one recompute did."""

    run_id: int
    gauges: int = 0  # gauges with thresholds and at least one reading
    active: int = 0  # warnings active afterwards
    raised: int = 0
    escalated: int = 0
    de_escalated: int = 0
    cleared: int = 0
    changed: int = 0  # active warnings that got a new version without a level change
    unchanged: int = 0
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return self.raised + self.escalated + self.de_escalated + self.cleared

    def summary(self) -> str:
        """One line for people, e.g. 'warnings: 1 active (1 raised)'."""
        what = [
            f"{n} {label}"
            for n, label in (
                (self.raised, "raised"),
                (self.escalated, "escalated"),
                (self.de_escalated, "de-escalated"),
                (self.cleared, "cleared"),
                (self.changed, "updated"),
            )
            if n
        ]
        return f"warnings: {self.active} active" + (f" ({', '.join(what)})" if what else "")


# -- 1. gauge state ----------------------------------------------------------------------------
# The latest reading of every current gauge and the level it reaches (highest threshold at or
# below the water level). The readings' primary key (gauge_code, observed_at) serves every
# lookup below as a short backward index scan.
_GAUGE_STATE = """
CREATE TEMP TABLE sdi_gauge_state ON COMMIT DROP AS
SELECT DISTINCT ON (g.gauge_code)
    g.gauge_code, g.name AS gauge_name, g.river, g.commune_code, g.admin_vintage,
    ARRAY[g.alarm_level_1, g.alarm_level_2, g.alarm_level_3] AS thresholds,
    r.observed_at, r.water_level_m,
    CASE WHEN r.water_level_m >= g.alarm_level_3 THEN 3
         WHEN r.water_level_m >= g.alarm_level_2 THEN 2
         WHEN r.water_level_m >= g.alarm_level_1 THEN 1
         ELSE 0 END::smallint AS level
FROM hazard.gauges_current g
CROSS JOIN LATERAL (
    SELECT observed_at, water_level_m FROM hazard.gauge_readings r
    WHERE r.gauge_code = g.gauge_code
    ORDER BY r.observed_at DESC LIMIT 1
) r
ORDER BY g.gauge_code, g.valid_from DESC, g.id
"""

# Gauges at level I or more: since when (first reading after the last one below the
# threshold) at alarm level I and at the current level, and the episode's peak.
_SINCE = """(
    SELECT min(r.observed_at) FROM hazard.gauge_readings r
    WHERE r.gauge_code = s.gauge_code
      AND r.observed_at > coalesce((
          SELECT max(b.observed_at) FROM hazard.gauge_readings b
          WHERE b.gauge_code = s.gauge_code AND b.water_level_m < {threshold}
      ), '-infinity')
)"""
_WARNING_NEW = f"""
CREATE TEMP TABLE sdi_warning_new ON COMMIT DROP AS
SELECT s.*, s.thresholds[s.level] AS threshold_m, s.thresholds[s.level + 1] AS next_threshold_m,
       {_SINCE.format(threshold="s.thresholds[1]")} AS alarm_since,
       {_SINCE.format(threshold="s.thresholds[s.level]")} AS level_since
FROM sdi_gauge_state s
WHERE s.level > 0
"""
_PEAK = """
ALTER TABLE sdi_warning_new ADD COLUMN peak_water_level_m double precision,
    ADD COLUMN peak_at timestamptz;
UPDATE sdi_warning_new s SET peak_water_level_m = p.water_level_m, peak_at = p.observed_at
FROM sdi_warning_new n CROSS JOIN LATERAL (
    SELECT r.water_level_m, r.observed_at FROM hazard.gauge_readings r
    WHERE r.gauge_code = n.gauge_code AND r.observed_at >= n.alarm_since
    ORDER BY r.water_level_m DESC, r.observed_at LIMIT 1
) p
WHERE s.gauge_code = n.gauge_code
"""

# -- 2. zones ----------------------------------------------------------------------------------
# The gauge's zones whose return period is at most the level's (or, when all its zones are
# rarer, its most frequent ones), unioned; kept in storage CRS for the indexed predicates and
# in the province CRS for lengths and areas.
_ZONES = """
CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT n.gauge_code,
       array_agg(z.zone_code ORDER BY z.return_period_years, z.zone_code) AS zone_codes,
       max(z.return_period_years) AS return_period_years,
       jsonb_agg(jsonb_build_object(
           'zone_code', z.zone_code, 'name', z.name,
           'return_period_years', z.return_period_years, 'depth_class', z.depth_class,
           'commune_code', z.commune_code
       ) ORDER BY z.return_period_years, z.zone_code) AS zones,
       coalesce(jsonb_agg(DISTINCT z.commune_code) FILTER (WHERE z.commune_code IS NOT NULL),
                '[]') AS communes,
       ST_Multi(ST_CollectionExtract(ST_Union(z.geom), 3))::geometry(MultiPolygon, 4326)
           AS geom
FROM sdi_warning_new n
JOIN hazard.flood_zones_current z ON z.gauge_code = n.gauge_code
WHERE z.return_period_years <= greatest(
    (%(periods)s::int[])[n.level],
    (SELECT min(m.return_period_years) FROM hazard.flood_zones_current m
     WHERE m.gauge_code = n.gauge_code)
)
GROUP BY n.gauge_code
"""
_ZONES_LOCAL = """
ALTER TABLE sdi_warning_zone ADD COLUMN geom_local geometry;
UPDATE sdi_warning_zone SET geom_local = ST_Transform(geom, %(srid)s::int);
ANALYZE sdi_warning_zone
"""

# -- 3. exposure -------------------------------------------------------------------------------
# "In the zone" means sharing at least one point with it (ST_Intersects on the stored,
# indexed column against the zone: the zone is the constant side).
_EXPOSED_BUILDINGS = """
CREATE TEMP TABLE sdi_exposed_buildings ON COMMIT DROP AS
SELECT z.gauge_code, b.id, b.building_code, b.name, b.use_type, b.floors, b.commune_code,
       b.geom
FROM sdi_warning_zone z
JOIN construction.buildings_current b ON ST_Intersects(b.geom, z.geom)
"""
_EXPOSED_PARCELS = """
CREATE TEMP TABLE sdi_exposed_parcels ON COMMIT DROP AS
SELECT z.gauge_code, p.id, p.natural_key, p.land_use_codes, p.commune_code, p.geom,
       CASE WHEN ST_CoveredBy(p.geom, z.geom)
            THEN ST_Area(ST_Transform(p.geom, %(srid)s::int))
            ELSE ST_Area(ST_Intersection(ST_Transform(p.geom, %(srid)s::int), z.geom_local))
       END AS area_in_zone_m2
FROM sdi_warning_zone z
JOIN land.parcels_current p ON ST_Intersects(p.geom, z.geom)
"""
# A facility is a site: a parcel with the facility's land-use code, or a building of the
# facility's type not standing (by its point on surface) on such an exposed parcel. Both sides
# are small; the parcels get a GiST index so matching a building to its parcel is a lookup.
_KINDS = """
WITH kinds (kind, code, use_type) AS (
    SELECT * FROM jsonb_to_recordset(%(facilities)s::jsonb)
        AS f(kind text, code text, use_type text)
)"""
_FACILITY_PARCELS = f"""
CREATE TEMP TABLE sdi_facility_parcels ON COMMIT DROP AS
{_KINDS}
SELECT p.gauge_code, k.kind, p.natural_key AS ref, p.commune_code, p.geom
FROM sdi_exposed_parcels p
JOIN kinds k ON p.land_use_codes @> ARRAY[k.code];
CREATE INDEX ON sdi_facility_parcels USING gist (geom);
ANALYZE sdi_facility_parcels
"""
_FACILITY_BUILDINGS = f"""
CREATE TEMP TABLE sdi_facility_buildings ON COMMIT DROP AS
{_KINDS}
SELECT b.gauge_code, k.kind, b.building_code AS ref, b.name, b.commune_code,
       (SELECT min(f.ref) FROM sdi_facility_parcels f
        WHERE ST_Intersects(f.geom, ST_PointOnSurface(b.geom))
          AND f.gauge_code = b.gauge_code AND f.kind = k.kind) AS parcel_ref
FROM sdi_exposed_buildings b
JOIN kinds k ON b.use_type = k.use_type
"""
_EXPOSED_FACILITIES = """
CREATE TEMP TABLE sdi_exposed_facilities ON COMMIT DROP AS
SELECT f.gauge_code, f.kind, 'parcel' AS site, f.ref, f.commune_code, named.name
FROM sdi_facility_parcels f
LEFT JOIN (
    SELECT gauge_code, kind, parcel_ref, min(name) AS name
    FROM sdi_facility_buildings WHERE parcel_ref IS NOT NULL
    GROUP BY 1, 2, 3
) named ON (named.gauge_code, named.kind, named.parcel_ref) = (f.gauge_code, f.kind, f.ref)
UNION ALL
SELECT gauge_code, kind, 'building', ref, commune_code, name
FROM sdi_facility_buildings
WHERE parcel_ref IS NULL
"""

# -- exposure figures of every area in sdi_warning_zone (keyed by gauge_code) -----------------
# Shared by the warnings (below) and the "exposure" OGC API process (sdi.api.processes), which
# fills sdi_warning_zone with one area of its own: one definition of what is exposed.
_EXPOSURE_CTES = """
WITH buildings AS (
    SELECT gauge_code, sum(n)::int AS buildings,
           jsonb_object_agg(use_type, n ORDER BY use_type) AS by_use,
           coalesce(sum(floors) FILTER (WHERE use_type = 'residential'), 0)::int
               AS residential_floors
    FROM (
        SELECT gauge_code, coalesce(use_type, 'unknown') AS use_type, count(*) AS n,
               sum(greatest(coalesce(floors, 1), 1)) AS floors
        FROM sdi_exposed_buildings GROUP BY 1, 2
    ) b
    GROUP BY gauge_code
), parcel_groups AS (
    SELECT gauge_code, grp, count(*) AS n, sum(area_in_zone_m2) AS area
    FROM (
        SELECT DISTINCT p.gauge_code, p.id, coalesce(g.grp, %(other)s) AS grp, p.area_in_zone_m2
        FROM sdi_exposed_parcels p
        CROSS JOIN LATERAL unnest(p.land_use_codes) AS c(code)
        LEFT JOIN jsonb_each_text(%(groups)s::jsonb) AS g(code, grp) ON g.code = c.code
    ) x
    GROUP BY 1, 2
), parcels AS (
    SELECT gauge_code, count(*)::int AS parcels FROM sdi_exposed_parcels GROUP BY 1
), parcels_by_group AS (
    SELECT gauge_code, jsonb_object_agg(grp, n ORDER BY grp) AS by_group,
           jsonb_object_agg(grp, round(area::numeric, 1) ORDER BY grp) AS area_by_group
    FROM parcel_groups GROUP BY 1
), facilities AS (
    SELECT gauge_code,
           count(*) FILTER (WHERE kind = 'school')::int AS schools,
           count(*) FILTER (WHERE kind = 'health')::int AS health_facilities,
           count(*) FILTER (WHERE kind = 'state_office')::int AS state_offices,
           count(*)::int AS critical_facilities,
           coalesce(jsonb_agg(jsonb_build_object('kind', kind, 'site', site, 'ref', ref,
                                                 'name', name, 'commune_code', commune_code)
                              ORDER BY kind, ref) FILTER (WHERE rn <= %(facility_limit)s),
                    '[]') AS listed
    FROM (
        SELECT *, row_number() OVER (PARTITION BY gauge_code ORDER BY kind, ref) AS rn
        FROM sdi_exposed_facilities
    ) f
    GROUP BY 1
), lamps AS (
    SELECT z.gauge_code, count(*)::int AS n
    FROM sdi_warning_zone z
    JOIN utility.street_lamps_current l ON ST_Intersects(l.geom, z.geom)
    GROUP BY 1
), cameras AS (
    SELECT z.gauge_code, count(*)::int AS n
    FROM sdi_warning_zone z
    JOIN utility.cameras_current c ON ST_Intersects(c.geom, z.geom)
    GROUP BY 1
), pipes AS (
    SELECT z.gauge_code, count(*)::int AS n,
           sum(ST_Length(ST_Intersection(ST_Transform(w.geom, %(srid)s::int), z.geom_local)))
               AS length_m
    FROM sdi_warning_zone z
    JOIN utility.water_pipes_current w ON ST_Intersects(w.geom, z.geom)
    GROUP BY 1
)
"""
_EXPOSURE_FIGURES = """
       round(ST_Area(z.geom_local)::numeric, 1)::float8 AS zone_area_m2,
       coalesce(b.buildings, 0) AS buildings, coalesce(b.by_use, '{}') AS buildings_by_use,
       coalesce(b.residential_floors, 0) AS residential_floors,
       round(coalesce(b.residential_floors, 0) * %(persons_per_floor)s::numeric)::int
           AS residents_estimate,
       coalesce(p.parcels, 0) AS parcels, coalesce(pg.by_group, '{}') AS parcels_by_group,
       coalesce(pg.area_by_group, '{}') AS parcel_area_by_group_m2,
       coalesce(f.schools, 0) AS schools, coalesce(f.health_facilities, 0) AS health_facilities,
       coalesce(f.state_offices, 0) AS state_offices,
       coalesce(f.critical_facilities, 0) AS critical_facilities,
       coalesce(l.n, 0) AS street_lamps,
       coalesce(round(w.length_m::numeric, 2), 0)::float8 AS water_pipes_m,
       coalesce(c.n, 0) AS cameras,
"""
_EXPOSURE_DETAIL = """
           'zones', coalesce(z.zones, '[]'),
           'communes', coalesce(z.communes, '[]'),
           'water_pipes', coalesce(w.n, 0),
           'facilities', coalesce(f.listed, '[]'),
           'facilities_not_listed',
               greatest(coalesce(f.critical_facilities, 0) - %(facility_limit)s::int, 0),
"""
_EXPOSURE_JOINS = """
LEFT JOIN buildings b USING (gauge_code)
LEFT JOIN parcels p USING (gauge_code)
LEFT JOIN parcels_by_group pg USING (gauge_code)
LEFT JOIN facilities f USING (gauge_code)
LEFT JOIN lamps l USING (gauge_code)
LEFT JOIN cameras c USING (gauge_code)
LEFT JOIN pipes w USING (gauge_code)
"""

# -- the next state of every active warning ---------------------------------------------------
_WARNING_NEXT = f"""
CREATE TEMP TABLE sdi_warning_next ON COMMIT DROP AS
{_EXPOSURE_CTES}
SELECT n.gauge_code, n.gauge_name, n.river, n.commune_code, n.admin_vintage,
       n.level, (%(labels)s::text[])[n.level + 1] AS level_label,
       n.water_level_m, n.observed_at, n.threshold_m, n.next_threshold_m,
       n.alarm_since, n.level_since, n.peak_water_level_m, n.peak_at,
       z.return_period_years, coalesce(z.zone_codes, '{{}}') AS zone_codes,
{_EXPOSURE_FIGURES}       jsonb_strip_nulls(jsonb_build_object(
{_EXPOSURE_DETAIL}           'model', jsonb_build_object(
               'return_period_years', (%(periods)s::int[])[n.level],
               'persons_per_floor', %(persons_per_floor)s::numeric),
           'note', CASE WHEN z.gauge_code IS NULL
                        THEN 'no flood zone is linked to this gauge: exposure unknown' END
       )) AS detail,
       z.geom
FROM sdi_warning_new n
LEFT JOIN sdi_warning_zone z USING (gauge_code)
{_EXPOSURE_JOINS}
"""

# Columns of a warning version besides the bookkeeping (id, natural_key, run_id, valid_*).
WARNING_COLUMNS = (
    "commune_code",
    "admin_vintage",
    "gauge_code",
    "gauge_name",
    "river",
    "level",
    "level_label",
    "water_level_m",
    "observed_at",
    "threshold_m",
    "next_threshold_m",
    "alarm_since",
    "level_since",
    "peak_water_level_m",
    "peak_at",
    "return_period_years",
    "zone_codes",
    "zone_area_m2",
    "buildings",
    "buildings_by_use",
    "residential_floors",
    "residents_estimate",
    "parcels",
    "parcels_by_group",
    "parcel_area_by_group_m2",
    "critical_facilities",
    "schools",
    "health_facilities",
    "state_offices",
    "street_lamps",
    "water_pipes_m",
    "cameras",
    "detail",
    "geom",
)
_HASHED = ", ".join(f"n.{c}" for c in WARNING_COLUMNS)
_IDS = f"""
ALTER TABLE sdi_warning_next ADD COLUMN row_hash uuid, ADD COLUMN id bigint;
UPDATE sdi_warning_next n SET row_hash = md5(ROW({_HASHED})::text)::uuid;
UPDATE sdi_warning_next n
SET id = coalesce(
    (SELECT w.id FROM hazard.warnings w WHERE w.natural_key = n.gauge_code AND w.valid_to IS NULL),
    nextval('hazard.warnings_id_seq')
)
"""

# -- 4. events and versions --------------------------------------------------------------------
_EVENTS = """
CREATE TEMP TABLE sdi_warning_events ON COMMIT DROP AS
SELECT coalesce(n.id, o.id) AS warning_id,
       coalesce(n.gauge_code, o.natural_key) AS gauge_code,
       coalesce(n.gauge_name, o.gauge_name) AS gauge_name,
       coalesce(n.commune_code, o.commune_code) AS commune_code,
       coalesce(n.admin_vintage, o.admin_vintage) AS admin_vintage,
       CASE WHEN o.level IS NULL THEN 'raised'
            WHEN n.level IS NULL THEN 'cleared'
            WHEN n.level > o.level THEN 'escalated'
            ELSE 'de-escalated' END AS event,
       coalesce(o.level, 0) AS level_from,
       coalesce(n.level, 0) AS level_to,
       coalesce(n.level_label, %(none)s) AS level_label,
       coalesce(n.water_level_m, s.water_level_m) AS water_level_m,
       coalesce(n.observed_at, s.observed_at) AS observed_at,
       n.level_since,
       CASE WHEN n.gauge_code IS NOT NULL THEN
                format('water level %%s m at %%s reached alarm level %%s (%%s m)',
                       n.water_level_m, n.observed_at, n.level_label, n.threshold_m)
            WHEN s.gauge_code IS NOT NULL THEN
                format('water level %%s m at %%s is below alarm level I (%%s m)',
                       s.water_level_m, s.observed_at, s.thresholds[1])
            ELSE 'the gauge is no longer in the gauge register (or has no readings)'
       END AS reason,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.zone_codes ELSE o.zone_codes END AS zone_codes,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.buildings ELSE o.buildings END AS buildings,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.residents_estimate
            ELSE o.residents_estimate END AS residents_estimate,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.critical_facilities
            ELSE o.critical_facilities END AS critical_facilities,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.geom ELSE o.geom END AS geom
FROM sdi_warning_next n
FULL JOIN (SELECT * FROM hazard.warnings WHERE valid_to IS NULL) o
    ON o.natural_key = n.gauge_code
LEFT JOIN sdi_gauge_state s ON s.gauge_code = coalesce(n.gauge_code, o.natural_key)
WHERE n.level IS DISTINCT FROM o.level
"""
_CLOSE_EVENTS = """
UPDATE hazard.warning_history h SET valid_to = now()
FROM sdi_warning_events e
WHERE h.natural_key = e.gauge_code AND h.valid_to IS NULL
"""
_EVENT_COLUMNS = (
    "warning_id, gauge_code, gauge_name, commune_code, admin_vintage, event, level_from, "
    "level_to, level_label, water_level_m, observed_at, level_since, reason, zone_codes, "
    "buildings, residents_estimate, critical_facilities, geom"
)
_WRITE_EVENTS = f"""
INSERT INTO hazard.warning_history (natural_key, {_EVENT_COLUMNS}, run_id, valid_from)
SELECT gauge_code, {_EVENT_COLUMNS}, %(run_id)s, now()
FROM sdi_warning_events
ORDER BY gauge_code
"""
_CLOSE_VERSIONS = """
UPDATE hazard.warnings w SET valid_to = now()
WHERE w.valid_to IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM sdi_warning_next n
      WHERE n.gauge_code = w.natural_key AND n.row_hash = w.row_hash
  )
"""
_COLUMN_LIST = ", ".join(WARNING_COLUMNS)
_WRITE_VERSIONS = f"""
INSERT INTO hazard.warnings (id, natural_key, {_COLUMN_LIST}, run_id, valid_from, row_hash)
SELECT n.id, n.gauge_code, {", ".join(f"n.{c}" for c in WARNING_COLUMNS)},
       %(run_id)s, now(), n.row_hash
FROM sdi_warning_next n
WHERE NOT EXISTS (
    SELECT 1 FROM hazard.warnings w WHERE w.natural_key = n.gauge_code AND w.valid_to IS NULL
)
ORDER BY n.gauge_code
"""


def _run(conn: psycopg.Connection, statement: str, params: dict | None = None) -> int:
    """Execute one or more ';'-separated statements; returns the last one's rowcount."""
    rowcount = 0
    for part in statement.split(";\n"):
        if part.strip():
            rowcount = (
                conn.execute(part, params).rowcount if params else conn.execute(part).rowcount
            )
    return rowcount


def _model_params(settings: Settings) -> dict:
    """The numbers of the model (sdi.hazard.model) as query parameters."""
    land_use = code_list("land_use")
    return {
        "srid": settings.province_srid,
        "periods": [model.LEVEL_RETURN_PERIOD_YEARS[level] for level in (1, 2, 3)],
        "labels": [model.LEVEL_LABELS[level] for level in (0, 1, 2, 3)],
        "none": model.LEVEL_LABELS[0],
        "persons_per_floor": model.PERSONS_PER_FLOOR,
        "groups": Jsonb(land_use.group_of()),
        "other": land_use.ungrouped,
        "facilities": Jsonb(
            [{"kind": k, "code": c, "use_type": u} for k, c, u in model.FACILITIES]
        ),
        "facility_limit": model.FACILITY_LIST_LIMIT,
    }


def _expose(conn: psycopg.Connection, params: dict) -> None:
    """What lies in each area of sdi_warning_zone: the sdi_exposed_* temporary tables."""
    _run(conn, _EXPOSED_BUILDINGS)
    _run(conn, "ANALYZE sdi_exposed_buildings")
    _run(conn, _EXPOSED_PARCELS, params)
    _run(conn, "ANALYZE sdi_exposed_parcels")
    _run(conn, _FACILITY_PARCELS, params)
    _run(conn, _FACILITY_BUILDINGS, params)
    _run(conn, _EXPOSED_FACILITIES)


def recompute(
    conn: psycopg.Connection,
    run_id: int,
    *,
    trigger: str = "manual",
    settings: Settings | None = None,
) -> RecomputeResult:
    """Bring ``hazard.warnings`` and ``hazard.warning_history`` up to date with the warehouse.

    ``run_id`` is the ETL run the changes are attributed to (lineage); ``trigger`` says what
    asked for the recompute (the loaded table, or 'manual'). Runs in a transaction (a savepoint
    when the caller has one open): all of it lands, or nothing.
    """
    settings = settings or get_settings()
    start = time.perf_counter()
    result = RecomputeResult(run_id)
    params = {"run_id": run_id, **_model_params(settings)}
    with conn.transaction():
        # One recompute at a time (loads of different input tables may finish together);
        # readers of the warnings are never blocked.
        conn.execute("LOCK TABLE hazard.warnings, hazard.warning_history IN EXCLUSIVE MODE")
        for table in _TEMP_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
        _run(conn, _GAUGE_STATE)
        _run(conn, _WARNING_NEW)
        _run(conn, _PEAK)
        _run(conn, _ZONES, params)
        _run(conn, _ZONES_LOCAL, params)
        _expose(conn, params)
        _run(conn, _WARNING_NEXT, params)
        _run(conn, _IDS)
        _run(conn, _EVENTS, params)
        _run(conn, _CLOSE_EVENTS)
        _run(conn, _WRITE_EVENTS, params)
        closed = _run(conn, _CLOSE_VERSIONS)
        written = _run(conn, _WRITE_VERSIONS, params)

        result.gauges = conn.execute("SELECT count(*) FROM sdi_gauge_state").fetchone()[0]
        result.active = conn.execute("SELECT count(*) FROM sdi_warning_next").fetchone()[0]
        for event, n in conn.execute("SELECT event, count(*) FROM sdi_warning_events GROUP BY 1"):
            setattr(result, event.replace("-", "_"), n)
        result.changed = written - result.raised - result.escalated - result.de_escalated
        result.unchanged = result.active - written
        assert closed == written - result.raised + result.cleared, "inconsistent versions"
        for table in _TEMP_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
        result.seconds = time.perf_counter() - start
        conn.execute(
            """
            INSERT INTO hazard.warning_recomputes (run_id, trigger, duration_ms, gauges, active,
                raised, escalated, de_escalated, cleared, changed, unchanged)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (
                run_id,
                trigger,
                round(result.seconds * 1000, 1),
                result.gauges,
                result.active,
                result.raised,
                result.escalated,
                result.de_escalated,
                result.cleared,
                result.changed,
                result.unchanged,
            ),
        )
    return result


# -- exposure of any area (the OGC API process "exposure") --------------------------------------
class ExposureInputError(ValueError):
    """The area, gauge or water level asked about cannot be used (a client error)."""


_POLYGON_AREA = """
CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT 'area'::text AS gauge_code, '{}'::text[] AS zone_codes, NULL::int AS return_period_years,
       '[]'::jsonb AS zones,
       (SELECT coalesce(jsonb_agg(c.commune_code ORDER BY c.commune_code), '[]')
        FROM admin.communes_current c WHERE ST_Intersects(c.geom, a.geom)) AS communes,
       a.geom
FROM (SELECT ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326))::geometry(MultiPolygon, 4326) AS geom) a
"""
_GAUGE_LEVEL = """
CREATE TEMP TABLE sdi_warning_new ON COMMIT DROP AS
SELECT gauge_code, %(level)s::int AS level FROM hazard.gauges_current WHERE gauge_code = %(gauge)s
"""
_EXPOSURE_OF_AREAS = f"""
{_EXPOSURE_CTES}
SELECT z.zone_codes, z.return_period_years,
{_EXPOSURE_FIGURES}       jsonb_strip_nulls(jsonb_build_object(
{_EXPOSURE_DETAIL}           'model', jsonb_build_object(
               'persons_per_floor', %(persons_per_floor)s::numeric)
       )) AS detail,
       ST_AsGeoJSON(z.geom, 7)::json AS geometry,
       ST_AsBinary(z.geom) AS wkb
FROM sdi_warning_zone z
{_EXPOSURE_JOINS}
"""


def _exposure_in_transaction(conn: psycopg.Connection, params: dict) -> tuple[dict, bytes | None]:
    _expose(conn, params)
    cur = conn.execute(_EXPOSURE_OF_AREAS, params)
    row = cur.fetchone()
    if row is None:  # no area: nothing exposed
        return {}, None
    *values, geometry, wkb = row
    # Named by the query's own column names: one list of figures (the SQL) to keep in order.
    figures = dict(zip((c.name for c in cur.description[:-2]), values, strict=True))
    return {"figures": figures, "geometry": geometry}, bytes(wkb)


def _drop_temp(conn: psycopg.Connection) -> None:
    for table in _TEMP_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")


def exposure_of_area(
    conn: psycopg.Connection, area_wkb: bytes, settings: Settings | None = None
) -> tuple[dict, bytes | None]:
    """What lies in a (multi)polygon (EPSG:4326, WKB): the figures of a warning's exposure.

    Returns ``({"figures": {...}, "geometry": GeoJSON}, wkb)``. Runs in a transaction of its
    own (a savepoint inside the caller's), only temporary tables are written.
    """
    params = _model_params(settings or get_settings())
    with conn.transaction():
        _drop_temp(conn)
        _run(conn, _POLYGON_AREA, {"wkb": area_wkb})
        _run(conn, "ALTER TABLE sdi_warning_zone ADD COLUMN geom_local geometry")
        _run(
            conn,
            "UPDATE sdi_warning_zone SET geom_local = ST_Transform(geom, %(srid)s::int)",
            params,
        )
        result = _exposure_in_transaction(conn, params)
        _drop_temp(conn)
    return result


def gauge_thresholds(conn: psycopg.Connection, gauge_code: str) -> tuple[float, float, float]:
    """Alarm levels I–III of a current gauge; ExposureInputError naming the known ones if none."""
    row = conn.execute(
        "SELECT alarm_level_1, alarm_level_2, alarm_level_3 FROM hazard.gauges_current "
        "WHERE gauge_code = %s",
        (gauge_code,),
    ).fetchone()
    if row is None:
        known = [
            c
            for (c,) in conn.execute(
                "SELECT gauge_code FROM hazard.gauges_current ORDER BY 1 LIMIT 50"
            )
        ]
        raise ExposureInputError(
            f"unknown gauge {gauge_code!r}; gauges: {', '.join(known) or 'none loaded'}"
        )
    return row


def exposure_of_gauge_level(
    conn: psycopg.Connection,
    gauge_code: str,
    water_level_m: float,
    settings: Settings | None = None,
) -> tuple[int, tuple[float, float, float], dict, bytes | None]:
    """What a warning of ``gauge_code`` would expose if the river stood at ``water_level_m``.

    The level and its zones are chosen exactly as for a real warning (``recompute``).
    Returns (level, thresholds, {"figures", "geometry"} or {} below alarm I or without zones,
    the area's WKB or None).
    """
    thresholds = gauge_thresholds(conn, gauge_code)
    level = model.level_of(water_level_m, thresholds)
    if level == 0:
        return 0, thresholds, {}, None
    params = {**_model_params(settings or get_settings()), "gauge": gauge_code, "level": level}
    with conn.transaction():
        _drop_temp(conn)
        _run(conn, _GAUGE_LEVEL, params)
        _run(conn, _ZONES, params)
        _run(conn, _ZONES_LOCAL, params)
        exposure, wkb = _exposure_in_transaction(conn, params)
        _drop_temp(conn)
    return level, thresholds, exposure, wkb
