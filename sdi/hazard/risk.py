"""Disaster risk levels of Decision 18/2021/QĐ-TTg for every hazard, per area and per commune.

``recompute(conn, run_id)`` runs inside the caller's transaction (the ETL runner calls it after
a load of rainfall, typhoon bulletins, zones, flood warnings' inputs or exposed layers):

1. rainfall accumulations over 1–72 hours per gauge, and per commune (the wettest gauge in
   the commune, else the nearest within 20 km: ``hazard.commune_rainfall``);
2. the typhoon's wind swaths from each storm's latest bulletin; the communes its level-6
   winds reach and the storm-surge zones it activates;
3. the measures of every candidate area, judged by the YAML rules (``sdi.hazard.rules``):
   heavy rain per commune, flash flood and landslide per susceptibility zone, typhoon per
   commune, storm surge per activated zone, river flood per active flood warning;
4. the exposure of each area, with the flood warnings' exposure code (``exposure_of_many``),
   and the evacuation list (residents' buildings in activated surge and landslide areas);
5. the difference with the active risk levels: versions and raise / escalation /
   de-escalation / clear events, and a CAP 1.2 message per event (``sdi.hazard.cap``);
6. the combined level per commune (Article 4 clause 4), versioned the same way.

Running it twice on an unchanged warehouse changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb

import sdi.sql
from sdi.hazard import cap
from sdi.hazard.exposure import exposure_of_many, exposure_stamp
from sdi.hazard.rules import LEVEL_COLOURS, LEVEL_LABELS, RuleSet, load_rules
from sdi.settings import Settings, get_settings
from sdi.sql import one

PACKAGE = "sdi.hazard"
MAX_GAUGE_DISTANCE_M = 20_000.0  # a commune farther than this from every gauge gets no rain
MIN_RAIN_MM = 50.0  # below this no rain rule can match: such areas are not even judged

# Tables the risk levels are derived from: sdi.hazard.hooks.RISK_INPUT_TABLES.
EVACUATED_HAZARDS = ("storm_surge", "flash_flood_landslide")


@dataclass
class Area:
    """One hazard's judged area: what the risk-level record says."""

    hazard: str
    area_kind: str
    area_code: str
    area_name: str | None
    commune_code: str | None
    measures: dict[str, Any]
    source: str | None
    observed_at: datetime | None
    wkb: bytes
    level: int = 0
    rule: str = ""
    article: str = ""
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.hazard}:{self.area_code}"


@dataclass
class RiskResult:
    run_id: int
    active: int = 0
    events: dict[str, int] = field(default_factory=dict)
    communes: int = 0  # communes with a combined level
    cap_messages: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        what = ", ".join(f"{n} {e}" for e, n in sorted(self.events.items()) if n)
        return (
            f"disaster risk: {self.active} active, {self.communes} communes"
            + (f" ({what})" if what else "")
            + (f", {self.cap_messages} CAP messages" if self.cap_messages else "")
        )


def _rows(conn: psycopg.Connection, name: str, params: dict | None = None) -> list[tuple]:
    return conn.execute(sdi.sql.load(PACKAGE, name), params or {}).fetchall()


def _run(conn: psycopg.Connection, name: str, params: dict | None = None) -> None:
    for part in sdi.sql.load(PACKAGE, name).split(";\n"):
        if part.strip():
            conn.execute(part, params or None)


# -- the areas of each hazard, with their measures -------------------------------------------
def _rain_areas(conn: psycopg.Connection, params: dict) -> list[Area]:
    areas = []
    for code, name, gauge, at, r12, r24, r48, r72, distance, method, wkb in _rows(
        conn, "risk_commune_rain_measures", params
    ):
        areas.append(
            Area(
                "heavy_rain",
                "commune",
                code,
                name,
                code,
                {
                    "r12_mm": round(r12, 1),
                    "r24_mm": round(r24, 1),
                    "r48_mm": round(r48, 1),
                    "r72_mm": round(r72, 1),
                    "gauge_code": gauge,
                    "gauge_distance_m": distance,
                    "method": method,
                },
                f"rain gauge {gauge}",
                at,
                bytes(wkb),
            )
        )
    for code, susceptibility, commune, gauge, at, r24, r72, distance, wkb in _rows(
        conn, "risk_zone_rainfall", params
    ):
        areas.append(
            Area(
                "flash_flood_landslide",
                "landslide_zone",
                code,
                None,
                commune,
                {
                    "r24_mm": round(r24, 1),
                    "prior_mm": round(r72 - r24, 1),
                    "r72_mm": round(r72, 1),
                    "susceptibility": susceptibility,
                    "gauge_code": gauge,
                    "gauge_distance_m": distance,
                },
                f"rain gauge {gauge}",
                at,
                bytes(wkb),
            )
        )
    return areas


def _typhoon_areas(conn: psycopg.Connection) -> list[Area]:
    _run(conn, "risk_typhoon_swaths")
    areas = []
    for code, name, storm, storm_name, issued, level, r10, coast, first_at, wkb in _rows(
        conn, "risk_typhoon_communes"
    ):
        areas.append(
            Area(
                "typhoon",
                "commune",
                code,
                name,
                code,
                {
                    "storm_level": level,
                    "setting": "coast" if coast else "land",
                    "wind_level": 10 if r10 else 6,
                    "storm_code": storm,
                    "storm_name": storm_name,
                    "bulletin_issued_at": issued.isoformat(),
                    "first_affected_at": first_at.isoformat(),
                },
                f"bulletin {storm} {issued.isoformat()}",
                issued,
                bytes(wkb),
            )
        )
    for zone, name, commune, scenario, height, storm, level, issued, first_at, wkb in _rows(
        conn, "risk_surge_zones"
    ):
        areas.append(
            Area(
                "storm_surge",
                "surge_zone",
                zone,
                name,
                commune,
                {
                    "surge_height_m": height,
                    "storm_level": level,
                    "zone_typhoon_level": scenario,
                    "storm_code": storm,
                    "first_affected_at": first_at.isoformat(),
                },
                f"bulletin {storm} {issued.isoformat()}",
                issued,
                bytes(wkb),
            )
        )
    return areas


def _flood_areas(conn: psycopg.Connection) -> list[Area]:
    areas = []
    for gauge, name, commune, level, water, above3, at, river, wkb in _rows(
        conn, "risk_flood_warnings"
    ):
        if wkb is None:
            continue
        areas.append(
            Area(
                "river_flood",
                "flood_warning",
                gauge,
                name,
                commune,
                {
                    "alarm_level": level,
                    "above_alarm3_m": round(above3, 2),
                    "water_level_m": water,
                    "river": river,
                },
                f"gauge {gauge}",
                at,
                bytes(wkb),
            )
        )
    return areas


def judge(areas: list[Area], rules: RuleSet) -> list[Area]:
    """The areas that reach a level, with the level, the rule and the article."""
    active = []
    for area in areas:
        rule = rules.hazards.get(area.hazard)
        if rule is None:
            continue
        verdict = rule.judge(area.measures)
        if verdict is None:
            continue
        area.level, criterion = verdict
        area.rule = criterion.text["en"]
        area.article = rule.citation(criterion)
        area.reason = f"{criterion.text['vi']} — {criterion.text['en']} ({area.article})"
        active.append(area)
    return active


# -- writing: versions, events, CAP, combined levels ----------------------------------------
_STATE = """
SELECT natural_key, id, level, row_hash, raised_at, level_since, hazard, area_kind, area_code,
       area_name, commune_code, communes, colour, rule, article, reason, measures,
       residents_estimate, buildings, ST_AsBinary(geom)
FROM hazard.risk_levels WHERE valid_to IS NULL
"""


def _hash(*values: Any) -> str:
    text = json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.md5(text.encode()).hexdigest()


def _event(conn, run_id: int, area: dict, event: str, level_from: int, level_to: int) -> None:
    conn.execute(
        "UPDATE hazard.risk_level_history SET valid_to = now() "
        "WHERE natural_key = %s AND valid_to IS NULL",
        (area["natural_key"],),
    )
    conn.execute(
        """INSERT INTO hazard.risk_level_history (natural_key, risk_id, hazard, area_kind,
               area_code, area_name, commune_code, communes, event, level_from, level_to,
               colour, rule, article, reason, measures, residents_estimate, buildings, geom,
               run_id, valid_from)
           VALUES (%(natural_key)s, %(id)s, %(hazard)s, %(area_kind)s, %(area_code)s,
               %(area_name)s, %(commune_code)s, %(communes)s, %(event)s, %(level_from)s,
               %(level_to)s, %(colour)s, %(rule)s, %(article)s, %(reason)s, %(measures)s,
               %(residents_estimate)s, %(buildings)s,
               ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)), %(run_id)s, now())""",
        {
            **area,
            "measures": Jsonb(area["measures"]),
            "event": event,
            "level_from": level_from,
            "level_to": level_to,
            "run_id": run_id,
        },
    )


def _communes(area: Area, figures: dict) -> list[str]:
    """The communes an area concerns: a commune itself; a zone, the communes sharing some of
    its interior (a neighbour touching its edge is not concerned)."""
    if area.area_kind == "commune" and area.commune_code is not None:
        return [area.commune_code]
    communes = set(figures.get("detail", {}).get("communes", []))
    if area.commune_code:
        communes.add(area.commune_code)
    return sorted(communes)


def _write_levels(
    conn: psycopg.Connection, run_id: int, active: list[Area], exposure: dict[str, dict]
) -> tuple[dict[str, int], list[tuple[str, dict, int, int]]]:
    current = {row[0]: row for row in conn.execute(_STATE).fetchall()}
    events: dict[str, int] = {}
    messages: list[tuple[str, dict, int, int]] = []  # (event, record, level_from, level_to)
    seen = set()
    for area in active:
        seen.add(area.key)
        figures = exposure.get(area.key, {})
        communes = _communes(area, figures)
        old = current.get(area.key)
        row_hash = _hash(
            area.level,
            area.rule,
            area.measures,
            communes,
            figures.get("buildings"),
            figures.get("residents_estimate"),
            area.wkb.hex(),
        )
        if old is not None and str(old[3]).replace("-", "") == row_hash:
            continue
        at = area.observed_at
        record = {
            "natural_key": area.key,
            "id": old[1]
            if old
            else one(conn.execute("SELECT nextval('hazard.risk_levels_id_seq')"))[0],
            "hazard": area.hazard,
            "area_kind": area.area_kind,
            "area_code": area.area_code,
            "area_name": area.area_name,
            "commune_code": area.commune_code,
            "communes": communes,
            "level": area.level,
            "level_label": LEVEL_LABELS[area.level]["en"],
            "colour": LEVEL_COLOURS[area.level],
            "rule": area.rule,
            "article": area.article,
            "reason": area.reason,
            "measures": area.measures,
            "source": area.source,
            "observed_at": at,
            "raised_at": old[4] if old else at,
            "level_since": old[5] if old and old[2] == area.level else at,
            "buildings": figures.get("buildings", 0),
            "residential_floors": figures.get("residential_floors", 0),
            "residents_estimate": figures.get("residents_estimate", 0),
            "critical_facilities": figures.get("critical_facilities", 0),
            "exposure": figures,
            "wkb": area.wkb,
            "row_hash": row_hash,
        }
        if old is not None:
            conn.execute(
                "UPDATE hazard.risk_levels SET valid_to = now() "
                "WHERE natural_key = %s AND valid_to IS NULL",
                (area.key,),
            )
        conn.execute(
            """INSERT INTO hazard.risk_levels (id, natural_key, hazard, area_kind, area_code,
                   area_name, commune_code, communes, level, level_label, colour, rule, article,
                   reason, measures, source, observed_at, raised_at, level_since, buildings,
                   residential_floors, residents_estimate, critical_facilities, exposure, geom,
                   run_id, valid_from, row_hash)
               VALUES (%(id)s, %(natural_key)s, %(hazard)s, %(area_kind)s, %(area_code)s,
                   %(area_name)s, %(commune_code)s, %(communes)s, %(level)s, %(level_label)s,
                   %(colour)s, %(rule)s, %(article)s, %(reason)s, %(measures_json)s, %(source)s,
                   %(observed_at)s, %(raised_at)s, %(level_since)s, %(buildings)s,
                   %(residential_floors)s, %(residents_estimate)s, %(critical_facilities)s,
                   %(exposure_json)s, ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326)), %(run_id)s, now(),
                   %(row_hash)s::uuid)""",
            {
                **record,
                "measures_json": Jsonb(area.measures),
                "exposure_json": Jsonb(record["exposure"]),
                "run_id": run_id,
            },
        )
        old_level = old[2] if old else 0
        if old_level != area.level:
            event = (
                "raised"
                if old is None
                else ("escalated" if area.level > old_level else "de-escalated")
            )
            events[event] = events.get(event, 0) + 1
            _event(conn, run_id, record, event, old_level, area.level)
            messages.append((event, record, old_level, area.level))
    for key, old in current.items():
        if key in seen:
            continue
        conn.execute(
            "UPDATE hazard.risk_levels SET valid_to = now() "
            "WHERE natural_key = %s AND valid_to IS NULL",
            (key,),
        )
        record = {
            "natural_key": key,
            "id": old[1],
            "hazard": old[6],
            "area_kind": old[7],
            "area_code": old[8],
            "area_name": old[9],
            "commune_code": old[10],
            "communes": old[11],
            "colour": old[12],
            "rule": old[13],
            "article": old[14],
            "reason": "the criteria of every level are no longer met",
            "measures": old[16],
            "residents_estimate": old[17],
            "buildings": old[18],
            "wkb": bytes(old[19]) if old[19] is not None else None,
            "level": old[2],
        }
        events["cleared"] = events.get("cleared", 0) + 1
        _event(conn, run_id, record, "cleared", old[2], 0)
        messages.append(("cleared", record, old[2], 0))
    return events, messages


def _write_combined(
    conn: psycopg.Connection, run_id: int, active: list[Area], exposure: dict, rules: RuleSet
) -> int:
    by_commune: dict[str, dict[str, int]] = {}
    for area in active:
        for commune in _communes(area, exposure.get(area.key, {})):
            if commune is None:
                continue
            levels = by_commune.setdefault(commune, {})
            levels[area.hazard] = max(levels.get(area.hazard, 0), area.level)
    current = {
        key: (cid, row_hash)
        for key, cid, row_hash in conn.execute(
            "SELECT natural_key, id, row_hash FROM hazard.combined_levels WHERE valid_to IS NULL"
        )
    }
    for commune, levels in sorted(by_commune.items()):
        level, raised, why = rules.combination.combine(levels)
        hazards = [
            {"hazard": h, "level": v}
            for h, v in sorted(levels.items(), key=lambda x: (-x[1], x[0]))
        ]
        names = [str(h["hazard"]) for h in hazards]
        reason = f"highest hazard level {max(levels.values())} ({', '.join(names)})" + (
            f"; {why}" if why else ""
        )
        row_hash = _hash(level, raised, hazards)
        old = current.pop(commune, None)
        if old is not None and str(old[1]).replace("-", "") == row_hash:
            continue
        if old is not None:
            conn.execute(
                "UPDATE hazard.combined_levels SET valid_to = now() "
                "WHERE natural_key = %s AND valid_to IS NULL",
                (commune,),
            )
        conn.execute(
            """INSERT INTO hazard.combined_levels (id, natural_key, commune_code, commune_name,
                   level, level_label, colour, highest_hazard_level, raised_by, hazards,
                   hazard_names, reason, geom, run_id, valid_from, row_hash)
               SELECT coalesce(%(id)s, nextval('hazard.combined_levels_id_seq')), %(commune)s,
                   %(commune)s, c.commune_name, %(level)s, %(label)s, %(colour)s, %(highest)s,
                   %(raised)s, %(hazards)s, %(names)s, %(reason)s, ST_Multi(c.geom), %(run_id)s,
                   now(), %(row_hash)s::uuid
               FROM (SELECT 1) one
               LEFT JOIN admin.communes_current c ON c.commune_code = %(commune)s""",
            {
                "id": old[0] if old else None,
                "commune": commune,
                "level": level,
                "label": LEVEL_LABELS[level]["en"],
                "colour": LEVEL_COLOURS[level],
                "highest": max(levels.values()),
                "raised": raised,
                "hazards": Jsonb(hazards),
                "names": names,
                "reason": reason,
                "run_id": run_id,
                "row_hash": row_hash,
            },
        )
    for commune in current:  # no hazard left in the commune
        conn.execute(
            "UPDATE hazard.combined_levels SET valid_to = now() "
            "WHERE natural_key = %s AND valid_to IS NULL",
            (commune,),
        )
    return len(by_commune)


# Loads that change no exposed layer: an area whose polygon is unchanged keeps its exposure.
OBSERVATIONS = frozenset({"hazard.rain_readings", "hazard.typhoon_track", "hazard.gauge_readings"})


# The areas counted ahead of a bulletin (when the exposed layers changed): the communes of the
# watched provinces (the deployment's and those with an active level) and every surge and
# landslide zone, except those already counted (md5 of the polygon as the figures are keyed).
_WARM_AREAS = """
SELECT m.md5, a.zone, a.kind, a.commune, a.wkb FROM (
    SELECT NULL::text AS zone, 'commune' AS kind, commune_code AS commune,
           ST_AsBinary(ST_Multi(geom)) AS wkb
    FROM admin.communes_current WHERE province_code = ANY(%(provinces)s)
    UNION ALL
    SELECT zone_code, 'zone', NULL, ST_AsBinary(ST_Multi(geom))
    FROM hazard.storm_surge_zones_current
    UNION ALL
    SELECT zone_code, 'zone', NULL, ST_AsBinary(ST_Multi(geom)) FROM hazard.landslide_zones_current
) a CROSS JOIN LATERAL (SELECT md5(a.wkb)) AS m (md5)
WHERE m.md5 <> ALL(%(counted)s::text[])
"""

# The cached areas a load of exposed features that touched some communes may have changed:
# those meeting the touched communes' extent (widened: a feature may straddle a boundary).
_NEAR_TOUCHED = """
WITH touched AS (
    SELECT ST_Expand(ST_SetSRID(ST_Extent(geom)::geometry, max(ST_SRID(geom))), %(near)s) AS box
    FROM admin.communes_current WHERE commune_code = ANY(%(communes)s::text[])
),
areas AS (
    SELECT ST_Multi(geom) AS geom FROM admin.communes_current
    UNION ALL SELECT ST_Multi(geom) FROM hazard.storm_surge_zones_current
    UNION ALL SELECT ST_Multi(geom) FROM hazard.landslide_zones_current
)
SELECT coalesce(array_agg(md5(ST_AsBinary(a.geom))), '{}') FROM areas a, touched t
WHERE a.geom && t.box
"""
NEAR_DEG = 0.01  # about 1 km: how far past the touched communes' extent figures are dropped
# Loads of exposed features (hazard.hooks.EXPOSED_TABLES) and their parts of the stamp
# (sdi/hazard/sql/exposure_stamp.sql: latest run and current rows of each exposed layer).
_STAMP_PARTS = {"construction.buildings": (0, 1), "land.parcels": (2, 3)}


def _forget_near(
    conn: psycopg.Connection,
    stamp: str,
    table: str,
    communes: frozenset[str],
    active: list[Area],
) -> int:
    """After a load of ``table`` that touched ``communes``: drop the cached figures of the
    areas meeting them, keep the others under the new stamp (only the load's own parts of
    the stamp may differ, else everything is dropped); returns how many were dropped.

    In a national warehouse a province's delivery so recounts its own areas, not the
    nation's."""
    parts = _STAMP_PARTS[table]
    now = stamp.split("|")
    cursor = conn.execute(_NEAR_TOUCHED, {"near": NEAR_DEG, "communes": sorted(communes)})
    near = set(one(cursor)[0])
    if active:  # active areas (rain, typhoon swaths, flood zones) meeting the touched ones
        box = one(
            conn.execute(
                "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM (SELECT "
                "ST_Expand(ST_Extent(geom), %s) AS b FROM admin.communes_current "
                "WHERE commune_code = ANY(%s::text[])) e",
                (NEAR_DEG, sorted(communes)),
            )
        )
        if box[0] is not None:
            window = shapely.box(*box)
            for area in active:
                if shapely.from_wkb(area.wkb).intersects(window):
                    near.add(hashlib.md5(area.wkb).hexdigest())
    keep: list[str] = []
    drop: list[str] = []
    for md5, was in conn.execute(
        "SELECT area_md5, stamp FROM hazard.area_exposure WHERE stamp <> %s", (stamp,)
    ).fetchall():
        before = was.split("|")
        others_same = len(before) == len(now) and all(
            b == n for i, (b, n) in enumerate(zip(before, now, strict=True)) if i not in parts
        )
        (keep if others_same and md5 not in near else drop).append(md5)
    conn.execute(
        "UPDATE hazard.area_exposure SET stamp = %s WHERE area_md5 = ANY(%s)", (stamp, keep)
    )
    conn.execute("DELETE FROM hazard.area_exposure WHERE area_md5 = ANY(%s)", (drop,))
    return len(drop)


# The evacuation list of an area rebuilt from its kept residential buildings.
_EVACUATION_FROM_KEPT = """
INSERT INTO hazard.evacuation_list (risk_key, hazard, level, area_code, building_id,
    building_code, building_name, floors, residents_estimate, commune_code, geom)
SELECT a.key, a.hazard, a.level, a.area_code, b.id, b.building_code, b.name, b.floors,
       r.residents_estimate, b.commune_code, ST_Multi(b.geom)
FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[])
     AS a(key, md5, hazard, level, area_code)
JOIN hazard.area_residents r ON r.area_md5 = a.md5
JOIN construction.buildings_current b ON b.id = r.building_id
ORDER BY a.key, b.building_code
"""


def note_load(
    conn: psycopg.Connection,
    table: str,
    communes: frozenset[str] | None,
    settings: Settings | None = None,
) -> None:
    """A load of ``table`` that touched ``communes`` and did not recompute the levels (no
    active level meets them): the cached exposure of the areas meeting them is dropped, the
    rest kept valid (:func:`_forget_near`), so the next recompute does not count them all."""
    if table in _STAMP_PARTS and communes is not None:
        _forget_near(conn, exposure_stamp(conn, settings or get_settings()), table, communes, [])


def _exposure(
    conn: psycopg.Connection,
    active: list[Area],
    trigger: str,
    settings: Settings,
    communes: frozenset[str] | None = None,
) -> dict[str, dict]:
    """Exposure of every active area (key → figures), with the evacuation list.

    Computed once per distinct polygon (a commune's heavy rain and typhoon share it) with the
    flood warnings' exposure code, and kept in ``hazard.area_exposure`` (with the residential
    buildings of surge and landslide zones, ``hazard.area_residents``: their evacuation list)
    under the exposed layers' stamp (``exposure_stamp``): while no exposed layer changes — an
    hourly rainfall delivery, a typhoon bulletin — an area whose polygon was counted before
    (under any hazard) is not counted again. When the exposed layers changed under figures
    in use, or on a manual recompute, every commune, surge zone and landslide zone is counted
    at once, so that a bulletin raising the whole province later finds them counted: those of
    the watched provinces (the deployment's and those with an active level). After a load of
    parcels or buildings that touched ``communes``, only the figures of areas meeting them
    are dropped (:func:`_forget_near`).
    """
    area_md5 = {a.key: hashlib.md5(a.wkb).hexdigest() for a in active}
    stamp = exposure_stamp(conn, settings)
    if communes is not None and trigger in _STAMP_PARTS:
        stale = _forget_near(conn, stamp, trigger, communes, active)
    else:
        stale = conn.execute(
            "DELETE FROM hazard.area_exposure WHERE stamp <> %s", (stamp,)
        ).rowcount
    cached = {
        md5: figures
        for md5, figures in conn.execute(
            "SELECT area_md5, figures FROM hazard.area_exposure WHERE area_md5 = ANY(%s)",
            (sorted(set(area_md5.values())),),
        )
    }
    # an evacuated area unchanged since the last recompute (same polygon, same level) keeps its
    # list as it is after a load of observations or forecasts
    kept: dict[str, dict] = {}
    if trigger in OBSERVATIONS:
        level_of = {a.key: a.level for a in active}
        for key, figures, level in conn.execute(
            "SELECT natural_key, exposure, level FROM hazard.risk_levels "
            "WHERE valid_to IS NULL AND hazard = ANY(%s)",
            (list(EVACUATED_HAZARDS),),
        ):
            if (
                key in area_md5
                and figures.get("area_md5") == area_md5[key]
                and level_of[key] == level
                and area_md5[key] in cached
            ):
                kept[key] = figures
    jobs: dict[str, bytes] = {}  # computation key → polygon
    job_of: dict[str, str] = {}
    evacuate: dict[str, dict] = {}
    relist: list[Area] = []  # evacuated areas whose list comes from the kept buildings
    for area in active:
        md5 = area_md5[area.key]
        if area.key in kept:
            continue
        if md5 in cached and (
            area.hazard not in EVACUATED_HAZARDS or cached[md5].get("residents_listed")
        ):
            if area.hazard in EVACUATED_HAZARDS:
                relist.append(area)
            continue
        if area.hazard in EVACUATED_HAZARDS:  # its residential buildings are listed by key
            job = area.key
            evacuate[job] = {
                "hazard": area.hazard,
                "level": area.level,
                "area_code": area.area_code,
            }
        else:
            job = f"area:{md5}"
        jobs[job] = area.wkb
        job_of[area.key] = job
    md5_of_job = {job: area_md5[key] for key, job in job_of.items()}
    known = {  # a commune's own area concerns that commune only (no need to find it again)
        job_of[a.key]: [a.commune_code]
        for a in active
        if a.area_kind == "commune" and a.commune_code and a.key in job_of
    }
    if stale or trigger == "manual":
        counted = {md5 for (md5,) in conn.execute("SELECT area_md5 FROM hazard.area_exposure")}
        counted |= set(md5_of_job.values())
        watched = {
            settings.province_code,
            *(
                p
                for (p,) in conn.execute(
                    "SELECT DISTINCT province_code FROM admin.communes_current "
                    "WHERE commune_code = ANY(%s::text[]) AND province_code IS NOT NULL",
                    (sorted({a.commune_code for a in active if a.commune_code}),),
                )
            ),
        }
        warm = conn.execute(_WARM_AREAS, {"provinces": sorted(watched), "counted": sorted(counted)})
        for md5, zone, kind, commune, wkb in warm.fetchall():
            if md5 in counted:  # the same polygon twice (a commune that is also a zone)
                continue
            counted.add(md5)
            job = f"warm:{md5}"
            jobs[job] = bytes(wkb)
            md5_of_job[job] = md5
            if kind == "commune":
                known[job] = [commune]
            else:  # its residential buildings are kept for its evacuation list
                evacuate[job] = {"hazard": "warm", "level": 0, "area_code": zone}
    for job in jobs:
        md5_of_job.setdefault(job, job.removeprefix("area:"))
    computed = (
        exposure_of_many(conn, jobs, evacuate=evacuate, communes=known, settings=settings)
        if jobs
        else {}
    )
    if computed:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO hazard.area_exposure (area_md5, stamp, figures) VALUES (%s, %s, %s) "
                "ON CONFLICT (area_md5) DO UPDATE SET stamp = excluded.stamp, "
                "figures = excluded.figures, computed_at = now()",
                [
                    (md5_of_job[job], stamp, Jsonb({**figures, "residents_listed": True}))
                    if job in evacuate
                    else (md5_of_job[job], stamp, Jsonb(figures))
                    for job, figures in computed.items()
                ],
            )
            cur.executemany(
                "INSERT INTO hazard.area_residents (area_md5, building_id, residents_estimate) "
                "SELECT %s, building_id, residents_estimate FROM hazard.evacuation_list "
                "WHERE risk_key = %s ON CONFLICT DO NOTHING",
                [(md5_of_job[job], job) for job in evacuate if job in computed],
            )
    if relist:
        keys = [a.key for a in relist]
        conn.execute("DELETE FROM hazard.evacuation_list WHERE risk_key = ANY(%s)", (keys,))
        conn.execute(
            _EVACUATION_FROM_KEPT,
            (
                keys,
                [area_md5[a.key] for a in relist],
                [a.hazard for a in relist],
                [a.level for a in relist],
                [a.area_code for a in relist],
            ),
        )
    # the evacuation list of areas no longer active (or evacuated no more, or only counted) goes
    conn.execute(
        "DELETE FROM hazard.evacuation_list WHERE NOT (risk_key = ANY(%s))",
        ([a.key for a in active if a.hazard in EVACUATED_HAZARDS],),
    )
    exposure = dict(kept)
    for area in active:
        if area.key in kept:
            continue
        job_key = job_of.get(area.key)
        figures = computed.get(job_key, {}) if job_key else cached.get(area_md5[area.key], {})
        exposure[area.key] = {**figures, "area_md5": area_md5[area.key]}
    return exposure


def _drop_temp(conn: psycopg.Connection) -> None:
    for table in ("sdi_rain_gauges", "sdi_typhoon_swaths"):
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("pg_temp", table)))


def installed(conn: psycopg.Connection) -> bool:
    return bool(one(conn.execute("SELECT to_regclass('hazard.risk_levels') IS NOT NULL"))[0])


def recompute(
    conn: psycopg.Connection,
    run_id: int,
    *,
    trigger: str = "manual",
    settings: Settings | None = None,
    rules: RuleSet | None = None,
    communes: frozenset[str] | None = None,
) -> RiskResult:
    """Bring the risk levels, their history, the combined levels, the commune rainfall, the
    evacuation list and the CAP messages up to date (one transaction). ``communes``: those a
    load of ``trigger`` (parcels, buildings) touched, whose areas' exposure is recounted."""
    settings = settings or get_settings()
    rules = rules or load_rules()
    start = time.perf_counter()
    result = RiskResult(run_id)
    params = {"max_gauge_distance_m": MAX_GAUGE_DISTANCE_M, "min_rain_mm": MIN_RAIN_MM}
    with conn.transaction():
        conn.execute(
            "LOCK TABLE hazard.risk_levels, hazard.combined_levels, hazard.cap_messages "
            "IN EXCLUSIVE MODE"
        )
        _drop_temp(conn)
        _run(conn, "risk_rain_gauges")
        _run(conn, "risk_commune_rainfall", params)
        areas = _rain_areas(conn, params) + _typhoon_areas(conn) + _flood_areas(conn)
        active = judge(areas, rules)
        exposure = _exposure(conn, active, trigger, settings, communes)
        result.events, messages = _write_levels(conn, run_id, active, exposure)
        result.active = len(active)
        result.communes = _write_combined(conn, run_id, active, exposure, rules)
        for event, record, level_from, level_to in messages:
            cap.issue(conn, run_id, event, record, level_from, level_to, rules, settings)
            result.cap_messages += 1
        _drop_temp(conn)
    result.seconds = time.perf_counter() - start
    return result
