"""Small street-lamp deliveries (points in Hạ Long) and a warehouse database of their own, for
the tests of bad inputs, CRS checks, the inbox, OSM extracts and HTML reports.

Everything is built at test time: GeoPackages, Shapefiles and GeoJSON with pyogrio/geopandas,
CSV by hand; bad inputs by damaging good ones the way deliveries get damaged (truncated
copies, missing parts, wrong declarations).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import geopandas as gpd
import psycopg
import shapely
from psycopg import sql
from pyproj import Transformer
from typer.testing import CliRunner

from sdi.settings import Settings
from tests.support.environment import sdi_settings

SRID = 5899  # VN-2000 / TM-3 107°45'
LON, LAT = 107.05, 20.95  # Hạ Long
_TO_TM3 = Transformer.from_crs("EPSG:4326", f"EPSG:{SRID}", always_xy=True)

LAMP_SPEC = """title: Street lamps {name}
department: Urban lighting company
source:
  path: {path}
  srid: {srid}{source_extra}
target:
  table: utility.street_lamps
natural_key: "{key}"
fields:
  lamp_code: {{from: lamp_id, required: true}}
  commune_code: commune_code
  road_name: road_name
  status: {{from: status, required: true}}
  power_w: {{from: power_w, type: integer}}
{fields_extra}validation:
  max_reject_ratio: {ratio}{validation_extra}
"""


def lamp_spec(
    path: str,
    *,
    name: str = "test",
    srid: int | str = SRID,
    key: str = "{lamp_id}",
    source_extra: str = "",
    fields_extra: str = "",
    ratio: float = 0.0,
    validation_extra: str = "",
) -> str:
    return LAMP_SPEC.format(
        name=name,
        path=path,
        srid=srid,
        key=key,
        source_extra=source_extra,
        fields_extra=fields_extra,
        ratio=ratio,
        validation_extra=validation_extra,
    )


def lamps(
    n: int = 20, *, prefix: str = "L", lon: float = LON, lat: float = LAT
) -> gpd.GeoDataFrame:
    """``n`` lamps 30 m apart along a road, in VN-2000 / TM-3 (EPSG:5899)."""
    x0, y0 = _TO_TM3.transform(lon, lat)
    return gpd.GeoDataFrame(
        {
            "lamp_id": [f"{prefix}{i:03d}" for i in range(n)],
            "commune_code": ["06685"] * n,
            "road_name": ["Đường Trần Hưng Đạo"] * n,
            "status": ["on" if i % 4 else "off" for i in range(n)],
            "power_w": [100 + 50 * (i % 3) for i in range(n)],
        },
        geometry=[shapely.Point(round(x0 + 30 * i, 3), round(y0 + 5 * i, 3)) for i in range(n)],
        crs=f"EPSG:{SRID}",
    )


def write(frame: gpd.GeoDataFrame, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_file(path, engine="pyogrio", **options)
    return path


@contextlib.contextmanager
def warehouse(migrated: str, settings: Settings, name: str) -> Iterator[str]:
    """A database beside the session's (same credentials), migrated to head: loads here never
    retire the session's sample data."""
    from sdi.db.migrate import upgrade

    url = urlunsplit(urlsplit(migrated)._replace(path=f"/{name}"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(url, settings)
    try:
        yield url
    finally:
        with psycopg.connect(migrated, autocommit=True) as conn:
            conn.execute(drop)


def sdi(*args: str, **env: str):
    """Run the ``sdi`` command in this process (typer's runner) with these SDI_* settings;
    the result has ``exit_code``, ``output`` (stdout + stderr) and ``exception``."""
    from sdi.cli import app

    with sdi_settings(**env):
        return CliRunner().invoke(app, list(args), catch_exceptions=True)


def fingerprint(url: str) -> tuple:
    """What a failed run must leave exactly as it was: every current and past lamp version,
    and no run left 'running'."""
    with psycopg.connect(url) as conn:
        lamps = conn.execute(
            "SELECT count(*), coalesce(md5(string_agg(natural_key || coalesce(power_w::text, '')"
            " || ST_AsText(geom) || coalesce(valid_to::text, ''), ',' ORDER BY version_id)), '')"
            " FROM utility.street_lamps"
        ).fetchone()
        running = conn.execute("SELECT count(*) FROM etl.runs WHERE status = 'running'").fetchone()
    return (*lamps, running[0])
