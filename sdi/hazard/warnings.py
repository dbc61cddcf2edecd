"""Recompute the flood warnings from the warehouse: levels, zones, exposure, versions, events.

``recompute(conn, run_id)`` runs in the caller's transaction (the ETL runner's, after a load of
an input), all in PostGIS, and is idempotent. The model it computes: ``docs/warnings.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

import sdi.sql
from sdi.db.extents import partitioned_by_province, provinces_of_box
from sdi.db.tables import PROVINCE_COLUMN
from sdi.etl.codes import code_list
from sdi.hazard import model
from sdi.settings import Settings, get_settings

PACKAGE = "sdi.hazard"  # its sql/ folder holds the statements

_TEMP_TABLES = (
    "sdi_gauge_state",
    "sdi_warning_new",
    "sdi_warning_zone",
    "sdi_zone_parts",
    "sdi_zone_edges",
    "sdi_edge_parcels",
    "sdi_commune_parts",
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


# -- the SQL: sdi/hazard/sql/*.sql, one file per statement, in the order recompute runs them ----
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


def _statement(name: str, **parts: sql.Composable) -> sql.Composed | sql.SQL:
    """``sql/<name>.sql``; the templates get the exposure fragments and the warning columns,
    or ``parts``."""
    if parts:
        return sdi.sql.query(PACKAGE, name).format(**parts)
    if name in ("warning_next", "exposure_of_areas", "risk_exposure"):
        return sdi.sql.query(PACKAGE, name).format(
            **{
                part: sql.SQL(sdi.sql.load(PACKAGE, part))
                for part in (
                    "exposure_ctes",
                    "exposure_figures",
                    "exposure_detail",
                    "exposure_joins",
                )
            }
        )
    if name == "warning_ids":
        return sdi.sql.query(PACKAGE, name).format(
            hashed=sql.SQL(", ").join(sql.Identifier("n", c) for c in WARNING_COLUMNS)
        )
    if name == "write_versions":
        return sdi.sql.query(PACKAGE, name).format(
            columns=sql.SQL(", ").join(map(sql.Identifier, WARNING_COLUMNS)),
            n_columns=sql.SQL(", ").join(sql.Identifier("n", c) for c in WARNING_COLUMNS),
        )
    return sql.SQL(sdi.sql.load(PACKAGE, name))


def _run(
    conn: psycopg.Connection, name: str, params: dict | None = None, **parts: sql.Composable
) -> int:
    """Execute the statements of ``sql/<name>.sql`` (one or more, ';'-separated); returns the
    last one's rowcount."""
    rowcount = 0
    for part in _statement(name, **parts).as_string(conn).split(";\n"):
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


# The exposed layers partitioned by province in a national warehouse (sdi/db/extents.py).
_EXPOSED_LAYERS = {"buildings": "construction.buildings", "parcels": "land.parcels"}


def _exposed_layers(conn: psycopg.Connection, settings: Settings) -> dict[str, sql.Composable]:
    """The current rows of the exposed layers the areas (``sdi_zone_parts``) can meet: of a
    table partitioned by province, those of the provinces whose stored extent meets the
    areas' (a literal list: the planner reads only those partitions, and the lookups by id
    probe their indexes only, not the nation's)."""
    box = sdi.sql.one(
        conn.execute(
            "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) "
            "FROM (SELECT ST_Extent(geom) AS b FROM sdi_zone_parts) e"
        )
    )
    out: dict[str, sql.Composable] = {}
    for name, table in _EXPOSED_LAYERS.items():
        current = sql.Identifier(*f"{table}_current".split("."))
        out[name] = current
        prunable = box[0] is not None and settings.storage_srid == 4326
        if prunable and partitioned_by_province(conn, table):
            codes = provinces_of_box(conn, table, *box)
            out[name] = sql.SQL("(SELECT * FROM {} WHERE {} = ANY({}::text[]))").format(
                current, sql.Identifier(PROVINCE_COLUMN), sql.Literal(codes)
            )
    return out


def _expose(conn: psycopg.Connection, params: dict, settings: Settings) -> None:
    """What lies in each area of sdi_warning_zone: the sdi_exposed_* temporary tables."""
    layers = _exposed_layers(conn, settings)
    _run(conn, "exposed_buildings", buildings=layers["buildings"])
    conn.execute("ANALYZE sdi_exposed_buildings")
    _run(conn, "exposed_parcels", params, parcels=layers["parcels"])
    conn.execute("ANALYZE sdi_exposed_parcels")
    _run(conn, "facility_parcels", params)
    _run(conn, "facility_buildings", params)
    _run(conn, "exposed_facilities")


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
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table))
            )
        _run(conn, "gauge_state")
        _run(conn, "warning_new")
        _run(conn, "peak")
        _run(conn, "zones", params)
        _run(conn, "zones_local", params)
        _expose(conn, params, settings)
        _run(conn, "warning_next", params)
        _run(conn, "warning_ids")
        _run(conn, "events", params)
        _run(conn, "close_events")
        _run(conn, "write_events", params)
        closed = _run(conn, "close_versions")
        written = _run(conn, "write_versions", params)

        result.gauges = sdi.sql.one(conn.execute("SELECT count(*) FROM sdi_gauge_state"))[0]
        result.active = sdi.sql.one(conn.execute("SELECT count(*) FROM sdi_warning_next"))[0]
        for event, n in conn.execute("SELECT event, count(*) FROM sdi_warning_events GROUP BY 1"):
            setattr(result, event.replace("-", "_"), n)
        result.changed = written - result.raised - result.escalated - result.de_escalated
        result.unchanged = result.active - written
        assert closed == written - result.raised + result.cleared, "inconsistent versions"
        for table in _TEMP_TABLES:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table))
            )
        result.seconds = time.perf_counter() - start
        conn.execute(
            sdi.sql.load(PACKAGE, "warning_recomputes"),
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


def _exposure_in_transaction(
    conn: psycopg.Connection, params: dict, settings: Settings
) -> tuple[dict, bytes | None]:
    _expose(conn, params, settings)
    cur = conn.execute(_statement("exposure_of_areas"), params)
    row = cur.fetchone()
    if row is None:  # no area: nothing exposed
        return {}, None
    *values, geometry, wkb = row
    # Named by the query's own column names: one list of figures (the SQL) to keep in order.
    figures = dict(zip((c.name for c in (cur.description or [])[:-2]), values, strict=True))
    return {"figures": figures, "geometry": geometry}, bytes(wkb)


def _drop_temp(conn: psycopg.Connection) -> None:
    for table in _TEMP_TABLES:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table)))


def exposure_of_area(
    conn: psycopg.Connection, area_wkb: bytes, settings: Settings | None = None
) -> tuple[dict, bytes | None]:
    """What lies in a (multi)polygon (EPSG:4326, WKB): the figures of a warning's exposure.

    Returns ``({"figures": {...}, "geometry": GeoJSON}, wkb)``. Runs in a transaction of its
    own (a savepoint inside the caller's), only temporary tables are written.
    """
    settings = settings or get_settings()
    params = _model_params(settings)
    with conn.transaction():
        _drop_temp(conn)
        _run(conn, "polygon_area", {"wkb": area_wkb})
        _run(conn, "zones_local", params)
        result = _exposure_in_transaction(conn, params, settings)
        _drop_temp(conn)
    return result


def exposure_of_many(
    conn: psycopg.Connection,
    areas: dict[str, bytes],
    *,
    evacuate: dict[str, dict] | None = None,
    communes: dict[str, list[str]] | None = None,
    settings: Settings | None = None,
) -> dict[str, dict]:
    """The exposure figures of many (multi)polygons at once (key → figures, EPSG:4326 WKB),
    counted exactly as a flood warning's. With ``evacuate`` (key → hazard, level, area_code),
    the evacuation list (``hazard.evacuation_list``) is rebuilt from those areas' residential
    buildings in the same pass. ``communes`` (key → commune codes) gives the communes of the
    areas that are known (a commune's own area: itself); the others' are those sharing some of
    their interior. Runs in a transaction of its own (a savepoint)."""
    settings = settings or get_settings()
    params = _model_params(settings)
    result: dict[str, dict] = {}
    with conn.transaction():
        _drop_temp(conn)
        known = communes or {}
        _run(
            conn,
            "risk_areas_zone",
            {
                "keys": list(areas),
                "wkbs": list(areas.values()),
                "communes": [json.dumps(sorted(known[k])) if k in known else None for k in areas],
            },
        )
        _run(conn, "zones_local", params)
        _run(conn, "risk_areas_communes")
        _expose(conn, params, settings)
        cur = conn.execute(_statement("risk_exposure"), params)
        names = [c.name for c in cur.description or ()]
        for row in cur.fetchall():
            result[row[0]] = dict(zip(names[1:], row[1:], strict=True))
        if evacuate is not None:
            _run(conn, "risk_evacuation", {**params, "evacuate": Jsonb(evacuate)})
        _drop_temp(conn)
    return result


def exposure_stamp(conn: psycopg.Connection, settings: Settings | None = None) -> str:
    """What exposure figures depend on (the exposed layers' latest runs and current rows, the
    model's parameters): figures counted under another stamp are stale."""
    params = _model_params(settings or get_settings())
    model_text = json.dumps(
        {k: (v.obj if isinstance(v, Jsonb) else v) for k, v in params.items()},
        sort_keys=True,
        default=str,
    )
    return str(
        sdi.sql.one(conn.execute(sdi.sql.load(PACKAGE, "exposure_stamp"), {"model": model_text}))[0]
    )


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
    settings = settings or get_settings()
    params = {**_model_params(settings), "gauge": gauge_code, "level": level}
    with conn.transaction():
        _drop_temp(conn)
        _run(conn, "gauge_level", params)
        _run(conn, "zones", params)
        _run(conn, "zones_local", params)
        exposure, wkb = _exposure_in_transaction(conn, params, settings)
        _drop_temp(conn)
    return level, thresholds, exposure, wkb
