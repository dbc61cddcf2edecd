"""Deterministic sample data for the four smart cities of Quảng Ninh.

:func:`generate` writes the files the departments deliver (land office shapefiles in TCVN3,
the construction department's permit export, the IOC's device inventories, the disaster
committee's gauges, zones and rasters) plus ``manifest.json``. Same seed and scale give the
same content. See ``docs/sample-data.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from affine import Affine

from sdi.samples.common import CADASTRAL_EPSG, UTM_EPSG, WGS84_EPSG
from sdi.samples.communes import CITIES, City, load_communes
from sdi.samples.construction import (
    PERMIT_COLUMNS,
    SURVEY_COLUMNS,
    generate_buildings,
    generate_permits,
    survey_buildings,
)
from sdi.samples.hazard import NODATA, depth_raster, generate_hazard
from sdi.samples.land import PARCEL_COLUMNS, generate_parcels, generate_zoning, to_multi
from sdi.samples.rainfall import write_rainfall
from sdi.samples.terrain import DEM_NODATA, generate_terrain
from sdi.samples.utility import (
    generate_cameras,
    generate_env_readings,
    generate_lamps,
    generate_pipes,
    generate_roads,
    generate_sensors,
    generate_wifi,
)
from sdi.samples.writers import (
    lonlat_columns,
    reproject,
    sha256_file,
    write_csv,
    write_geojson,
    write_geotiff,
    write_gpkg,
    write_kml,
    write_shapefile,
    write_shapefile_tcvn3,
)

__all__ = ["CITIES", "GENERATOR_VERSION", "generate"]

GENERATOR_VERSION = "5"  # bump when the files or their content change
PARCELS_FORMATS = ("shp", "gpkg")

# DBF fields of the land office's parcel shapefile (names ≤ 10 characters).
PARCEL_FIELDS = {
    "MAXA": "str:5",
    "SOTO": "int:4",
    "SOTHUA": "int:6",
    "KHLOAIDAT": "str:10",
    "DIENTICH": "float:12.1",
    "CHUSDD": "str:80",
    "DIACHI": "str:100",
}
COMMUNE_COLUMNS = (
    "commune_code",
    "commune_name",
    "commune_type",
    "province_code",
    "area_km2",
    "city",
)
ZONING_COLUMNS = (
    "ma_khu",
    "ten_khu",
    "chuc_nang",
    "hs_sdd",
    "tang_cao",
    "ma_quy_hoach",
    "ngay_duyet",
    "ma_xa",
)
BUILDING_COLUMNS = (
    "building_id",
    "commune_code",
    "floors",
    "height_m",
    "use_type",
    "year_built",
    "name",
)
LAMP_COLUMNS = (
    "lamp_id",
    "road_id",
    "road_name",
    "status",
    "power_w",
    "install_year",
    "cabinet_id",
    "commune_code",
)
WIFI_COLUMNS = ("hotspot_id", "name", "ssid", "lon", "lat", "status", "provider", "commune_code")
CAMERA_COLUMNS = ("camera_id", "name", "sector", "kind", "status", "commune_code")
# fmt: off
PIPE_COLUMNS = ("pipe_id", "diameter_mm", "material", "install_year", "pressure_zone",
                "commune_code")
# fmt: on
SENSOR_COLUMNS = ("sensor_id", "name", "kind", "lon", "lat", "status", "commune_code", "parameters")
FLOOD_COLUMNS = ("zone_id", "return_period", "depth_class", "gauge_id", "commune_code", "name")
GAUGE_COLUMNS = (
    "gauge_id",
    "name",
    "river",
    "lon",
    "lat",
    "commune_code",
    "alarm_1",
    "alarm_2",
    "alarm_3",
    "datum",
)
READING_COLUMNS = ("gauge_id", "observed_at", "water_level_m")
ENV_READING_COLUMNS = ("sensor_id", "observed_at", "parameter", "value", "unit")
# The geology institute's landslide susceptibility map (DBF names of at most 10 characters).
LANDSLIDE_COLUMNS = ("MA_VUNG", "MUC_NGUY", "CHI_SO", "DO_DOC", "KHAI_THAC", "MA_XA")
SURGE_COLUMNS = ("Name", "ma_vung", "cap_bao", "nuoc_dang_m", "cap_nuoc_dang", "ma_xa")


@dataclass(frozen=True)
class _Output:
    """One delivered vector or table file: its collected frame, path (the extension says the
    format), columns, and for GeoPackages and shapefiles layer, geometry type and CRS."""

    frame: str
    rel: str
    columns: tuple[str, ...]
    layer: str | None = None
    geometry_type: str | None = None
    epsg: int = CADASTRAL_EPSG
    excel: bool = False  # a CSV exported from Excel: BOM and CRLF


OUTPUTS = (
    _Output("zoning", "land/zoning_plan.gpkg", ZONING_COLUMNS, "quy_hoach", "MultiPolygon"),
    _Output("buildings", "construction/buildings.geojson", BUILDING_COLUMNS),
    _Output(
        "survey", "construction/buildings_survey.gpkg", SURVEY_COLUMNS, "nha_khao_sat", "Polygon"
    ),
    _Output("permits", "construction/building_permits.csv", PERMIT_COLUMNS, excel=True),
    _Output("lamps", "utility/street_lamps.gpkg", LAMP_COLUMNS, "den_chieu_sang", "Point"),
    _Output("wifi", "utility/wifi_hotspots.csv", WIFI_COLUMNS),
    _Output("cameras", "utility/cameras.geojson", CAMERA_COLUMNS),
    _Output("pipes", "utility/water_pipes.gpkg", PIPE_COLUMNS, "ong_cap_nuoc", "LineString"),
    _Output("sensors", "utility/env_sensors.csv", SENSOR_COLUMNS),
    _Output("env_readings", "utility/env_readings.csv", ENV_READING_COLUMNS),
    _Output("zones", "hazard/flood_zones.gpkg", FLOOD_COLUMNS, "vung_ngap", "MultiPolygon"),
    _Output("gauges", "hazard/gauge_stations.csv", GAUGE_COLUMNS),
    _Output("readings", "hazard/gauge_readings.csv", READING_COLUMNS),
    _Output(
        "landslide",
        "hazard/landslide_susceptibility.shp",
        LANDSLIDE_COLUMNS,
        geometry_type="MultiPolygon",
        epsg=UTM_EPSG,
    ),
    _Output("surge", "hazard/storm_surge_zones.kml", SURGE_COLUMNS),
)


def _with_lonlat(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["lon"], out["lat"] = lonlat_columns(df["x"].to_numpy(), df["y"].to_numpy())
    return out


class _Manifest:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.files: dict[str, dict] = {}

    def add(
        self,
        rel: str,
        by_city: dict[str, int],
        extra_parts: tuple[str, ...] = (),
        **extra: object,
    ) -> None:
        """Record a written file: rows (pixels for rasters), rows per city, checksums."""
        path = self.out_dir / rel
        entry = {
            "rows": int(sum(by_city.values())),
            "rows_by_city": {c.slug: int(by_city.get(c.slug, 0)) for c in CITIES},
            "sha256": sha256_file(path),
        }
        if extra_parts:
            entry["parts_sha256"] = {ext: sha256_file(path.with_suffix(ext)) for ext in extra_parts}
        entry.update(extra)
        self.files[rel] = entry


def _count(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["city"].value_counts().items()}


def generate(
    out_dir: Path,
    *,
    scale: float = 1.0,
    seed: int = 2025,
    parcels_format: str = "shp",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the sample files for Hạ Long, Uông Bí, Cẩm Phả and Móng Cái into ``out_dir``.

    ``scale`` multiplies parcels (6,000 per city at 1.0), buildings and permits; zoning zones
    and pipes grow up to 4×; devices, gauges and flood zones are fixed. ``parcels_format``
    is "shp" (one TCVN3 shapefile per city) or "gpkg" (one UTF-8 GeoPackage, for large runs).
    Returns the manifest, also written to ``out_dir/manifest.json``.
    """
    if parcels_format not in PARCELS_FORMATS:
        raise ValueError(f"parcels_format must be one of {PARCELS_FORMATS}, not {parcels_format!r}")
    if not scale > 0:
        raise ValueError("scale must be positive")
    say = progress or (lambda _message: None)
    out = Path(out_dir)
    for sub in ("admin", "land", "construction", "utility", "hazard"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(out)

    communes = load_communes()
    say(f"communes: {len(communes)}")
    admin = communes.copy()
    admin["geometry"] = to_multi(
        reproject(shapely.segmentize(communes["geometry"].to_numpy(), 100.0))
    )
    write_gpkg(
        admin,
        out / "admin/communes_2025.gpkg",
        "communes",
        columns=COMMUNE_COLUMNS,
        geometry_type="MultiPolygon",
        epsg=WGS84_EPSG,
    )
    manifest.add("admin/communes_2025.gpkg", _count(admin))

    collected: dict[str, list[pd.DataFrame]] = {
        k: []
        for k in (
            "zoning",
            "buildings",
            "permits",
            "lamps",
            "wifi",
            "cameras",
            "pipes",
            "sensors",
            "zones",
            "gauges",
            "readings",
        )
    }
    invalid_keys: list[dict] = []
    parcel_counts: dict[str, int] = {}
    gpkg_parcels = out / "land/parcels.gpkg"
    _clean_other_format(out, parcels_format)
    for city in CITIES:
        parcels = generate_parcels(communes, city, scale=scale, seed=seed, progress=say)
        table = parcels.table.assign(geometry=parcels.geometry)
        parcel_counts[city.slug] = len(table)
        invalid_keys += parcels.invalid_keys
        if parcels_format == "shp":
            rel = f"land/parcels_{city.slug}.shp"
            write_shapefile_tcvn3(table, out / rel, fields=PARCEL_FIELDS, epsg=CADASTRAL_EPSG)
            manifest.add(rel, {city.slug: len(table)}, (".shx", ".dbf", ".prj"))
        else:
            write_gpkg(
                table,
                gpkg_parcels,
                "parcels",
                columns=PARCEL_COLUMNS,
                geometry_type="Polygon",
                epsg=CADASTRAL_EPSG,
                append=city.index > 0,
            )
        say(f"parcels {city.slug}: {len(table)} written")

        collected["zoning"].append(generate_zoning(parcels, communes, scale=scale, seed=seed))
        buildings = generate_buildings(parcels, seed=seed)
        collected["buildings"].append(buildings)
        collected["permits"].append(generate_permits(parcels, buildings, seed=seed))
        roads = generate_roads(parcels, communes, seed=seed)
        collected["lamps"].append(generate_lamps(roads, city, seed=seed))
        collected["wifi"].append(generate_wifi(parcels, seed=seed))
        collected["cameras"].append(generate_cameras(roads, city, seed=seed))
        collected["pipes"].append(generate_pipes(parcels, communes, scale=scale, seed=seed))
        collected["sensors"].append(generate_sensors(parcels, seed=seed))
        hazard = generate_hazard(parcels, communes, seed=seed)
        collected["zones"].append(hazard.zones)
        collected["gauges"].append(hazard.gauges)
        collected["readings"].append(hazard.readings.assign(city=city.slug))
        _write_raster(
            out,
            f"hazard/flood_depth_{city.slug}.tif",
            city,
            depth_raster(hazard),
            manifest,
            epsg=CADASTRAL_EPSG,
            nodata=NODATA,
        )
        say(f"{city.slug}: buildings {len(buildings)}, lamps {len(collected['lamps'][-1])}")
        del parcels, table

    if parcels_format == "gpkg":
        manifest.add("land/parcels.gpkg", parcel_counts)
    terrain = generate_terrain(communes, seed=seed)
    collected["landslide"] = [terrain.landslide]
    collected["surge"] = [terrain.surge]
    for city in CITIES:
        _write_raster(
            out,
            f"hazard/elevation_{city.slug}.tif",
            city,
            terrain.dems[city.slug],
            manifest,
            epsg=UTM_EPSG,
            nodata=DEM_NODATA,
        )
    say(f"terrain: {len(terrain.landslide)} landslide zones, {len(terrain.surge)} surge zones")
    _write_collected(out, collected, manifest, seed)
    write_rainfall(out, communes, manifest.add, seed=seed)  # sdi/samples/rainfall.py

    result = {
        "seed": int(seed),
        "scale": float(scale),
        "generator_version": GENERATOR_VERSION,
        "parcels_format": parcels_format,
        "reference_date": "2025-10-15",
        "crs": {"cadastral": f"EPSG:{CADASTRAL_EPSG}", "wgs84": f"EPSG:{WGS84_EPSG}"},
        "cities": {
            c.slug: {
                "name": c.name,
                "district_code": c.district_code,
                "abbr": c.abbr,
                "communes": communes.loc[communes["city"] == c.slug, "commune_code"].tolist(),
            }
            for c in CITIES
        },
        "centroid_corrections": communes.loc[
            communes["centroid_source"] != "reference", "commune_code"
        ].tolist(),
        "files": dict(sorted(manifest.files.items())),
        "invalid_parcels": len(invalid_keys),
        "invalid_parcels_keys": invalid_keys,
    }
    (out / "manifest.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    say(f"manifest: {len(result['files'])} files")
    return result


def _clean_other_format(out: Path, parcels_format: str) -> None:
    """Remove parcel files of the other format left by an earlier run."""
    if parcels_format == "shp":
        stale = [out / "land/parcels.gpkg"]
    else:
        stale = [
            out / f"land/parcels_{c.slug}{ext}"
            for c in CITIES
            for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg")
        ]
    for path in stale:
        if path.exists():
            path.unlink()


def _write_raster(
    out: Path,
    rel: str,
    city: City,
    raster: tuple[np.ndarray, Affine],
    manifest: _Manifest,
    *,
    epsg: int,
    nodata: float,
) -> None:
    array, transform = raster
    write_geotiff(array, transform, out / rel, epsg=epsg, nodata=nodata, unit="m")
    manifest.add(rel, {city.slug: int(array.size)}, width=array.shape[1], height=array.shape[0])


def _prepare(frames: dict[str, pd.DataFrame], seed: int) -> None:
    """Derived frames and the text formatting the delivering software uses."""
    frames["survey"] = survey_buildings(frames["buildings"], seed=seed)
    frames["wifi"] = _with_lonlat(frames["wifi"])
    frames["sensors"] = _with_lonlat(frames["sensors"])
    frames["env_readings"] = generate_env_readings(frames["sensors"], seed=seed)
    gauges = _with_lonlat(frames["gauges"])
    for col in ("alarm_1", "alarm_2", "alarm_3"):
        gauges[col] = np.char.mod("%.2f", gauges[col].to_numpy(dtype=float))
    frames["gauges"] = gauges
    readings = frames["readings"]
    frames["readings"] = readings.assign(
        water_level_m=np.char.mod("%.3f", readings["water_level_m"].to_numpy(dtype=float))
    )


def _write_output(out: Path, df: pd.DataFrame, spec: _Output, manifest: _Manifest) -> None:
    """Write one delivered file in the format its extension says, and record it."""
    path = out / spec.rel
    parts: tuple[str, ...] = ()
    if path.suffix == ".gpkg":
        assert spec.layer and spec.geometry_type, f"{spec.rel}: a GeoPackage needs both"
        write_gpkg(
            df,
            path,
            spec.layer,
            columns=spec.columns,
            geometry_type=spec.geometry_type,
            epsg=spec.epsg,
        )
    elif path.suffix == ".geojson":
        write_geojson(df, path, columns=spec.columns)
    elif path.suffix == ".kml":
        write_kml(df, path, columns=spec.columns)
    elif path.suffix == ".shp":
        assert spec.geometry_type, f"{spec.rel}: a shapefile needs a geometry type"
        write_shapefile(
            df, path, columns=spec.columns, geometry_type=spec.geometry_type, epsg=spec.epsg
        )
        parts = (".shx", ".dbf", ".prj", ".cpg")
    else:
        write_csv(df[list(spec.columns)], path, bom=spec.excel, crlf=spec.excel)
    manifest.add(spec.rel, _count(df), parts)


def _write_collected(
    out: Path, collected: dict[str, list[pd.DataFrame]], manifest: _Manifest, seed: int
) -> None:
    frames = {k: pd.concat(v, ignore_index=True) for k, v in collected.items()}
    _prepare(frames, seed)
    for spec in OUTPUTS:
        _write_output(out, frames[spec.frame], spec, manifest)
