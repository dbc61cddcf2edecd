"""The scripted typhoon day of issue 15 (item 6), fed through the ETL step by step.

A Yagi-like typhoon, "T-YAGI", approaches two communes of our own in an empty corner of the
province: 99901 "Xã Ven Biển T" on the coast (three nested storm-surge zones) and 99902 "Xã
Đồi T" on the hills (three landslide zones of known susceptibility, a river gauge with two
flood zones). One rain gauge stands in each commune. Every step delivers, through the real
feed jobs, the hourly rain since the previous step, the river gauge's readings and, at some
steps, a new typhoon bulletin; after each step the test reads back over HTTP the risk levels
per hazard and area, the combined level per commune with its raise, and checks them against
the table below, worked out by hand from the rule files (etl/rules/disaster_risk/):

rain (mm): 1 mm/h on the hill for the 72 h before T0, none on the coast; from T0+1 h, 12.5
mm/h on the hill and 5 mm/h on the coast until T0+24 h; none afterwards. Consecutive hours
alternate ±0.1 (±1 mm, ±0.5 mm) around these means, as real gauges do (an identical non-zero
value six hours running is a stuck sensor, rejected by the feed); every window of an even
number of hours sums to the mean.

Per step: hill r24 / prior (r72 − r24), coast r12 / r24 in mm; storm level; river level;
expected levels.

| step | hill | coast | storm | typhoon c/h | surge | rain h/c | LS1/2/3 | river | combined c/h |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
| T0 | 24/48 | 0/0 | 13 (B1) | 4/4 | SS2 → 4 | –/– | –/–/– | – 1.5 m | 5 (+2) / 4 |
| T0+12 | 162/48 | 60/60 | 14 (B2) | 4/4 | SS3 → 5 | 1/1 | 1/2/– | 1 2.6 m | 5 (+2) / 5 (+1) |
| T0+24 | 300/48 | 60/120 | 14 (B2) | 4/4 | SS3 → 5 | 2/1 | 2/3/– | 1 3.4 m | 5 (+2) / 5 (+2) |
| T0+36 | 150/186 | 0/60 | final | – | – | 2/– | 1/2/– | 1 2.5 m | – / 3 (+1) |
| T0+60 | 0 | 0/0 | – | – | – | – | – | – 1.8 m | – / – |

Typhoon (Article 42, read: the column "vùng biển ven bờ, đất liền Đông Bắc Bộ" of its table):
levels 12–15 are level 4, so the storm's intensification from 13 to 14 keeps level 4 (the
national centre gave Yagi level 4 there too). Heavy rain (Article 44 clause 1, read): 100–200
mm in 24 h or 50–100 mm in 12 h is level 1 — the coast's 60 mm in 12 h at T0+12; the hill's
levels 2 are the service's unconfirmed reading of clause 2 (over 200 mm in 24 h at T0+24; 150
mm in 24 h lasting, 336 mm in 72 h ≥ 300, at T0+36). River (Article 45, region 1): alarm 1
(2.0 m) and alarm 2 (3.0 m) are level 1; 1.8 m is below alarm 1.
Storm levels: bulletin B1's point at T0+12 h (level 13, 180 km, r6 250 km) and the landfall
point (level 12, r6 200 km) reach both communes, the T0 point (level 14, 420 km) does not:
13. B2 raises the T0+12 h point to level 14: 14. Surge: the zone of the strongest scenario the
storm reaches ('12-13' at 13, '14-15' at 14). Combined: Article 4 clause 4 as in
combination.yml (raise 1 with two hazards at level ≥ 2, raise 2 with two at level ≥ 3).
The exposure of the activated surge zone equals an independent PostGIS query; the CAP
messages validate against the CAP 1.2 schema: the coast's typhoon is an alert then a cancel,
the hill's heavy rain an alert, an update (1 → 2) and a cancel, each referencing the first.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg
import pytest
import xmlschema
from psycopg import sql
from pyproj import Geod, Transformer

from sdi.etl.runner import run_job
from sdi.etl.spec import load_job
from sdi.settings import Settings
from tests.conftest import PROJECT_DIR

FEEDS = PROJECT_DIR / "etl" / "feeds"
XSD = PROJECT_DIR / "schemas" / "cap" / "CAP-v1.2.xsd"
ICT = timezone(timedelta(hours=7))
T0 = datetime(2031, 9, 6, 0, 0, tzinfo=ICT)
E1, N1 = 475_500.0, 2_349_530.0  # EPSG:5899, south of Tiên Yên
COAST, HILL = "99901", "99902"
COMMUNES = {COAST: ("Xã Ven Biển T", (0, 0, 4000, 4000)), HILL: ("Xã Đồi T", (4000, 0, 8000, 4000))}
RAIN_GAUGES = {"T-R1": (2000, 2000, COAST), "T-R2": (6000, 2000, HILL)}
LANDSLIDE = {  # code: box, susceptibility, rank
    "T-LS1": ((5000, 500, 6000, 1500), "high", 3),
    "T-LS2": ((6500, 2500, 7500, 3500), "very_high", 4),
    "T-LS3": ((4500, 3000, 5000, 3500), "low", 1),
}
SURGE = {  # code: box, typhoon scenario, surge height
    "T-SS1": ((0, 0, 1000, 4000), "10-11", 1.2),
    "T-SS2": ((0, 0, 2000, 4000), "12-13", 2.4),
    "T-SS3": ((0, 0, 3000, 4000), "14-15", 3.5),
}
BUILDINGS = {  # code: box, use, floors
    "T-TB1": ((490, 1990, 510, 2010), "residential", 3),  # SS1, SS2, SS3
    "T-TB2": ((1490, 1990, 1510, 2010), "residential", 2),  # SS2, SS3
    "T-TB3": ((2490, 1990, 2510, 2010), "residential", 4),  # SS3
    "T-TB4": ((5490, 990, 5510, 1010), "residential", 1),  # LS1
    "T-TB5": ((3490, 1990, 3510, 2010), "education", 2),  # coast, no zone
}
RIVER_GAUGE = ("T-RG", (4600, 600), (2.0, 3.0, 4.0))
FLOOD_ZONES = {"T-RF10": (10, (4200, 200, 4800, 800)), "T-RF50": (50, (4100, 100, 4900, 900))}
TABLES = (
    "admin.communes",
    "hazard.rain_gauges",
    "hazard.landslide_zones",
    "hazard.storm_surge_zones",
    "construction.buildings",
    "hazard.gauges",
    "hazard.flood_zones",
)
_TO_LONLAT = Transformer.from_crs(5899, 4326, always_xy=True)
_GEOD = Geod(ellps="WGS84")


def _wkt_box(x0: float, y0: float, x1: float, y1: float) -> str:
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return "POLYGON((" + ", ".join(f"{E1 + x} {N1 + y}" for x, y in ring) + "))"


def _insert(conn, table: str, key: str, commune: str, run: int, values: dict, wkt: str) -> None:
    multi = not wkt.startswith("POINT")
    geom = "ST_Transform(ST_GeomFromText(%s, 5899), 4326)"
    columns = "".join(f", {c}" for c in values)
    marks = "".join(", %s" for _ in values)
    conn.execute(
        f"INSERT INTO {table} (natural_key, commune_code, run_id, valid_from, row_hash, geom"
        f"{columns}) VALUES (%s, %s, %s, now(), md5(%s)::uuid, "
        f"{'ST_Multi(' + geom + ')' if multi else geom}{marks})",
        [key, commune, run, key, wkt, *values.values()],
    )


def _clean(conn: psycopg.Connection) -> None:
    # the risk model's tables hold only what this scenario raised (the samples raise nothing)
    # (the kept exposure too: a later load of an exposed layer would count it all again)
    for table in (
        "cap_messages",
        "risk_level_history",
        "risk_levels",
        "combined_levels",
        "area_exposure",
    ):
        conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier("hazard", table)))
    conn.execute("DELETE FROM hazard.rain_readings WHERE gauge_code LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.typhoon_track WHERE storm_code LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.warning_history WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.warnings WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.gauge_readings WHERE gauge_code LIKE 'T-%'")
    for table in TABLES:
        conn.execute(
            sql.SQL(
                "DELETE FROM {} WHERE natural_key LIKE 'T-%' OR natural_key LIKE '999%'"
            ).format(sql.Identifier(*table.split(".")))
        )


@pytest.fixture(scope="module")
def day(loaded: dict, migrated: str) -> Iterator[str]:
    with psycopg.connect(migrated, autocommit=True) as conn:
        _clean(conn)
        run = conn.execute(
            "INSERT INTO etl.runs (job, status, finished_at, message) VALUES "
            "('test_typhoon_day', 'succeeded', clock_timestamp(), 'scripted typhoon day') "
            "RETURNING run_id"
        ).fetchone()[0]
        for code, (name, box) in COMMUNES.items():
            _insert(conn, "admin.communes", code, code, run, {"commune_name": name}, _wkt_box(*box))
        for code, (x, y, commune) in RAIN_GAUGES.items():
            _insert(
                conn,
                "hazard.rain_gauges",
                code,
                commune,
                run,
                {"gauge_code": code, "name": code},
                f"POINT({E1 + x} {N1 + y})",
            )
        for code, (box, susceptibility, rank) in LANDSLIDE.items():
            _insert(
                conn,
                "hazard.landslide_zones",
                code,
                HILL,
                run,
                {"zone_code": code, "susceptibility": susceptibility, "susceptibility_rank": rank},
                _wkt_box(*box),
            )
        for code, (box, scenario, height) in SURGE.items():
            _insert(
                conn,
                "hazard.storm_surge_zones",
                code,
                COAST,
                run,
                {
                    "zone_code": code,
                    "name": code,
                    "typhoon_level": scenario,
                    "surge_height_m": height,
                },
                _wkt_box(*box),
            )
        for code, (box, use, floors) in BUILDINGS.items():
            commune = COAST if box[0] < 4000 else HILL
            _insert(
                conn,
                "construction.buildings",
                code,
                commune,
                run,
                {"building_code": code, "use_type": use, "floors": floors},
                _wkt_box(*box),
            )
        gauge, (x, y), (a1, a2, a3) = RIVER_GAUGE
        _insert(
            conn,
            "hazard.gauges",
            gauge,
            HILL,
            run,
            {
                "gauge_code": gauge,
                "name": gauge,
                "alarm_level_1": a1,
                "alarm_level_2": a2,
                "alarm_level_3": a3,
            },
            f"POINT({E1 + x} {N1 + y})",
        )
        for code, (period, box) in FLOOD_ZONES.items():
            _insert(
                conn,
                "hazard.flood_zones",
                code,
                HILL,
                run,
                {"zone_code": code, "return_period_years": period, "gauge_code": gauge},
                _wkt_box(*box),
            )
    try:
        yield migrated
    finally:
        with psycopg.connect(migrated, autocommit=True) as conn:
            _clean(conn)


# -- deliveries ----------------------------------------------------------------------------------
def _point(km_east: float, km_north: float) -> tuple[float, float]:
    """lon/lat of a point km east and north of the coast commune's centre."""
    lon, lat = _TO_LONLAT.transform(E1 + 2000, N1 + 2000)
    azimuth = 90.0 if km_east >= 0 else 270.0
    lon, lat, _ = _GEOD.fwd(lon, lat, azimuth, abs(km_east) * 1000)
    lon, lat, _ = _GEOD.fwd(lon, lat, 0.0 if km_north >= 0 else 180.0, abs(km_north) * 1000)
    return round(lon, 5), round(lat, 5)


def _bulletin(issued_h: int, points: list[tuple[int, float, float, int, float, float]]) -> list:
    rows = []
    for hours, east, north, level, r6, r10 in points:
        lon, lat = _point(east, north)
        rows.append(
            {
                "storm_code": "T-YAGI",
                "storm_name": "Bão số 3 (T-YAGI)",
                "issued_at": (T0 + timedelta(hours=issued_h)).isoformat(),
                "valid_at": (T0 + timedelta(hours=hours)).isoformat(),
                "lon": lon,
                "lat": lat,
                "max_wind_level": level,
                "gust_level": min(level + 3, 17),
                "r6_km": r6,
                "r10_km": r10,
            }
        )
    return rows


# B1: 420 km ESE at T0 (level 14), 180 km at T0+12 (13), landfall at T0+24 (12), inland.
B1 = _bulletin(
    0,
    [
        (0, 400, -120, 14, 250, 100),
        (12, 170, -60, 13, 250, 100),
        (24, 0, 0, 12, 200, 80),
        (36, -150, 30, 8, 100, 0),
    ],
)
B2 = _bulletin(
    12, [(12, 170, -60, 14, 250, 100), (24, 0, 0, 12, 200, 80), (36, -150, 30, 8, 100, 0)]
)
B3 = _bulletin(36, [(36, -150, 30, 5, 0, 0)])  # final bulletin: a low-pressure area


def _rain(start_h: int, end_h: int) -> list[tuple[str, float, float]]:
    """Hourly readings (gauge, hours after T0, mm) for the hours start_h < h <= end_h."""
    rows = []
    for h in range(start_h + 1, end_h + 1):
        sign = 1 if h % 2 else -1
        if h <= 0:
            rows += [("T-R2", h, 1.0 + 0.1 * sign), ("T-R1", h, 0.0)]
        elif h <= 24:
            rows += [("T-R2", h, 12.5 + 0.5 * sign), ("T-R1", h, 5.0 + 0.5 * sign)]
        else:
            rows += [("T-R2", h, 0.0), ("T-R1", h, 0.0)]
    return rows


@pytest.fixture()
def feed(day: str, settings: Settings, tmp_path: Path):
    count = [0]

    def run(job: str, path: str, header: list[str], rows: list) -> None:
        count[0] += 1
        source = tmp_path / f"delivery-{count[0]}"
        (source / "hazard").mkdir(parents=True)
        with (source / path).open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow([row[h] for h in header] if isinstance(row, dict) else row)
        local = settings.model_copy(update={"source_dir": source})
        result = run_job(load_job(FEEDS / f"{job}.yml", local), day, settings=local)
        assert result.status == "succeeded", result.message
        assert result.rejected == 0, result.message

    def rain(start_h: int, end_h: int) -> None:
        rows = [
            (g, (T0 + timedelta(hours=h)).isoformat(), mm) for g, h, mm in _rain(start_h, end_h)
        ]
        run(
            "hazard_rain_readings_incremental",
            "hazard/rain_readings_recent.csv",
            ["gauge_id", "observed_at", "rain_mm"],
            rows,
        )

    def river(hours: int, level: float) -> None:
        run(
            "hazard_gauge_readings_incremental",
            "hazard/gauge_readings_recent.csv",
            ["gauge_id", "observed_at", "water_level_m"],
            [("T-RG", (T0 + timedelta(hours=hours)).isoformat(), level)],
        )

    def bulletin(rows: list[dict]) -> None:
        run("hazard_typhoon_bulletin", "hazard/typhoon_bulletin.csv", list(rows[0]), rows)

    return rain, river, bulletin


# -- reading back ------------------------------------------------------------------------------
def _levels(api: httpx.Client) -> dict[str, int]:
    body = api.get("/collections/risk_levels/items", params={"f": "json", "limit": 1000}).json()
    return {
        f"{f['properties']['hazard']}:{f['properties']['area_code']}": f["properties"]["level"]
        for f in body["features"]
        if f["properties"]["area_code"] in {COAST, HILL, *LANDSLIDE, *SURGE, RIVER_GAUGE[0]}
    }


def _combined(api: httpx.Client) -> dict[str, tuple[int, int]]:
    body = api.get("/collections/combined_levels/items", params={"f": "json", "limit": 1000})
    return {
        f["properties"]["commune_code"]: (f["properties"]["level"], f["properties"]["raised_by"])
        for f in body.json()["features"]
        if f["properties"]["commune_code"] in (COAST, HILL)
    }


STEPS = [  # (hour, rain from, bulletin, river level, expected levels, combined)
    (
        0,
        -72,
        B1,
        1.5,
        {f"typhoon:{COAST}": 4, f"typhoon:{HILL}": 4, "storm_surge:T-SS2": 4},
        {COAST: (5, 2), HILL: (4, 0)},
    ),
    (
        12,
        0,
        B2,
        2.6,
        {
            f"typhoon:{COAST}": 4,
            f"typhoon:{HILL}": 4,
            "storm_surge:T-SS3": 5,
            f"heavy_rain:{HILL}": 1,
            f"heavy_rain:{COAST}": 1,
            "flash_flood_landslide:T-LS1": 1,
            "flash_flood_landslide:T-LS2": 2,
            "river_flood:T-RG": 1,
        },
        {COAST: (5, 2), HILL: (5, 1)},
    ),
    (
        24,
        12,
        None,
        3.4,
        {
            f"typhoon:{COAST}": 4,
            f"typhoon:{HILL}": 4,
            "storm_surge:T-SS3": 5,
            f"heavy_rain:{HILL}": 2,
            f"heavy_rain:{COAST}": 1,
            "flash_flood_landslide:T-LS1": 2,
            "flash_flood_landslide:T-LS2": 3,
            "river_flood:T-RG": 1,
        },
        {COAST: (5, 2), HILL: (5, 2)},
    ),
    (
        36,
        24,
        B3,
        2.5,
        {
            f"heavy_rain:{HILL}": 2,
            "flash_flood_landslide:T-LS1": 1,
            "flash_flood_landslide:T-LS2": 2,
            "river_flood:T-RG": 1,
        },
        {HILL: (3, 1)},
    ),
    (60, 36, None, 1.8, {}, {}),
]


def _independent_surge_exposure(db: psycopg.Connection, zone: str) -> tuple[int, int]:
    return db.execute(
        """SELECT count(*), coalesce(sum(greatest(coalesce(b.floors, 1), 1))
                                     FILTER (WHERE b.use_type = 'residential'), 0)
           FROM construction.buildings_current b
           JOIN hazard.storm_surge_zones_current z ON ST_Intersects(b.geom, z.geom)
           WHERE z.zone_code = %s""",
        (zone,),
    ).fetchone()


def test_the_typhoon_day_hour_by_hour(day, feed, api, settings) -> None:
    rain, river, bulletin = feed
    schema = xmlschema.XMLSchema(str(XSD))
    with psycopg.connect(day, autocommit=True) as db:
        for hour, rain_from, new_bulletin, water, expected, combined in STEPS:
            before = db.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
            if new_bulletin is not None:
                bulletin(new_bulletin)
            river(hour, water)
            rain(rain_from, hour)
            assert _levels(api) == expected, f"T0+{hour} h"
            assert _combined(api) == combined, f"T0+{hour} h"
            # the change feed of the step: what was raised, changed or cleared by its runs
            changes = api.get(
                "/collections/risk_levels/changes", params={"since": before, "limit": 10_000}
            )
            assert changes.status_code == 200, changes.text
            changed = {
                f"{f['properties']['hazard']}:{f['properties']['area_code']}": (
                    f["properties"]["change"]
                )
                for f in changes.json()["features"]
            }
            if hour == 0:
                assert changed[f"typhoon:{COAST}"] == "added"
            if hour == 36:
                assert changed[f"typhoon:{COAST}"] == "removed"
            surge = [k for k in expected if k.startswith("storm_surge:")]
            for key in surge:
                zone = key.split(":")[1]
                record = db.execute(
                    "SELECT buildings, residential_floors FROM hazard.risk_levels_current "
                    "WHERE natural_key = %s",
                    (key,),
                ).fetchone()
                assert record == _independent_surge_exposure(db, zone), key
                evacuation = {
                    code
                    for (code,) in db.execute(
                        "SELECT building_code FROM hazard.evacuation_list "
                        "WHERE risk_key = %s AND building_code LIKE 'T-%%'",
                        (key,),
                    )
                }
                assert evacuation == {
                    c
                    for c, (box, use, _) in BUILDINGS.items()
                    if use == "residential" and box[0] < SURGE[zone][0][2]
                }
        # CAP: every message valid; the typhoon on the coast: alert, cancel (it stays at
        # level 4 from 13 to 14); the heavy rain on the hill: alert, update, cancel
        messages = db.execute(
            'SELECT identifier, msg_type, "references", xml FROM hazard.cap_messages '
            "WHERE natural_key = %s ORDER BY id",
            (f"typhoon:{COAST}",),
        ).fetchall()
        assert [m[1] for m in messages] == ["Alert", "Cancel"]
        first = messages[0][0]
        assert first in messages[1][2]
        rain_messages = db.execute(
            'SELECT identifier, msg_type, "references" FROM hazard.cap_messages '
            "WHERE natural_key = %s ORDER BY id",
            (f"heavy_rain:{HILL}",),
        ).fetchall()
        assert [m[1] for m in rain_messages] == ["Alert", "Update", "Cancel"]
        assert all(rain_messages[0][0] in m[2] for m in rain_messages[1:])
        for _identifier, _kind, _refs, xml in db.execute(
            'SELECT identifier, msg_type, "references", xml FROM hazard.cap_messages'
        ).fetchall():
            schema.validate(xml)
        decoded = schema.to_dict(messages[0][3])
        assert [i["language"] for i in decoded["info"]] == ["vi-VN", "en-US"]
        assert decoded["info"][0]["severity"] == "Extreme"  # level 4
        assert decoded["info"][0]["urgency"] == "Expected"
        assert decoded["info"][0]["certainty"] == "Likely"
        codes = {g["value"] for g in decoded["info"][0]["area"][0]["geocode"]}
        assert COAST in codes
        # served at stable URLs, and no longer in the Atom feed once cancelled
        response = api.get(f"/cap/{first}.xml")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/cap+xml")
        schema.validate(response.text)
        atom = api.get("/cap/alerts.atom")
        assert atom.status_code == 200 and first not in atom.text
        # history: the coast's typhoon raised at 4 and cleared; the hill's rain 1 → 2 → cleared
        history = db.execute(
            "SELECT event, level_from, level_to FROM hazard.risk_level_history "
            "WHERE natural_key = %s ORDER BY id",
            (f"typhoon:{COAST}",),
        ).fetchall()
        assert history == [("raised", 0, 4), ("cleared", 4, 0)]
        history = db.execute(
            "SELECT event, level_from, level_to FROM hazard.risk_level_history "
            "WHERE natural_key = %s ORDER BY id",
            (f"heavy_rain:{HILL}",),
        ).fetchall()
        assert history == [("raised", 0, 1), ("escalated", 1, 2), ("cleared", 2, 0)]
