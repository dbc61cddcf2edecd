"""Read a generated sample directory back and check it against its manifest.

``check(out_dir)`` returns a list of problems (empty when everything holds): checksums, row
counts, CRS, TCVN3 text in the parcel shapefiles, features inside their commune, exactly the
recorded invalid parcels, nested flood zones, raster/zone consistency, gauge readings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from pyproj import CRS

from sdi.etl.encodings import decode_tcvn3_mojibake
from sdi.samples.common import CADASTRAL_EPSG, UTM_EPSG, WGS84_EPSG, to_wgs84, transformer
from sdi.samples.writers import sha256_file


class _Problems(list):
    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.append(message)


def _epsg(crs: str | None) -> int | None:
    return CRS.from_user_input(crs).to_epsg() if crs else None


def _inside(
    problems: _Problems,
    label: str,
    communes: pd.DataFrame,
    codes: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
) -> None:
    """All (lon, lat) points lie in the commune polygon of their code."""
    geoms = communes.set_index("commune_code").geometry
    bad = 0
    for code in np.unique(codes):
        sel = codes == code
        bad += int((~shapely.contains_xy(geoms[code], lon[sel], lat[sel])).sum())
    problems.expect(bad == 0, f"{label}: {bad} vertices/points outside their commune")


def _inside_lonlat(p: _Problems, label: str, communes: pd.DataFrame, df: pd.DataFrame) -> None:
    """The lon/lat columns of a CSV lie in the commune of their commune_code."""
    codes = df["commune_code"].to_numpy()
    _inside(p, label, communes, codes, df["lon"].to_numpy(), df["lat"].to_numpy())


def _vertices_lonlat(geoms: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    if epsg == WGS84_EPSG:
        return coords[:, 0], coords[:, 1], index
    lon, lat = transformer(epsg, WGS84_EPSG).transform(coords[:, 0], coords[:, 1])
    return np.asarray(lon), np.asarray(lat), index


def check(out_dir: Path) -> list[str]:
    """Check every file of a generated sample directory; returns the problems found."""
    out = Path(out_dir)
    p = _Problems()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    for rel, entry in manifest["files"].items():
        path = out / rel
        if not path.exists():
            p.append(f"{rel}: missing")
            continue
        p.expect(sha256_file(path) == entry["sha256"], f"{rel}: sha256 differs from manifest")

    communes = pyogrio.read_dataframe(out / "admin/communes_2025.gpkg", layer="communes")
    _rows(p, manifest, "admin/communes_2025.gpkg", len(communes))
    p.expect(len(communes) == 54, "communes: not 54")
    p.expect(_epsg(communes.crs) == WGS84_EPSG, "communes: CRS is not EPSG:4326")
    p.expect(set(communes.geom_type) == {"MultiPolygon"}, "communes: not MultiPolygon")
    cities = manifest["cities"]
    for slug, info in cities.items():
        got = sorted(communes.loc[communes["city"] == slug, "commune_code"])
        p.expect(got == sorted(info["communes"]), f"communes: city {slug} differs")

    _check_parcels(p, out, manifest, communes)
    _check_zoning(p, out, manifest, communes)
    _check_construction(p, out, manifest, communes)
    _check_utility(p, out, manifest, communes)
    _check_hazard(p, out, manifest, communes)
    _check_terrain(p, out, manifest, communes)
    return list(p)


def _check_parcels(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    names = communes.set_index("commune_code")["commune_name"]
    keys = {(k["MAXA"], k["SOTO"], k["SOTHUA"]) for k in manifest["invalid_parcels_keys"]}
    frames = []
    if manifest["parcels_format"] == "shp":
        for slug in manifest["cities"]:
            path = out / f"land/parcels_{slug}.shp"
            p.expect(not path.with_suffix(".cpg").exists(), f"{path.name}: has a .cpg")
            prj = path.with_suffix(".prj").read_text()
            p.expect(
                CRS.from_wkt(prj).equals(CRS.from_epsg(CADASTRAL_EPSG)),
                f"{path.name}: .prj is not EPSG:5899",
            )
            # No .cpg and LDID 0: GDAL hands the bytes over as latin-1 text (mojibake).
            df = pyogrio.read_dataframe(path)
            for col in ("CHUSDD", "DIACHI"):
                df[col] = df[col].map(decode_tcvn3_mojibake)
            df["city"] = slug
            frames.append(df)
            _rows(p, manifest, f"land/parcels_{slug}.shp", len(df))
            dbf = path.with_suffix(".dbf").read_bytes()
            p.expect(dbf[29] == 0, f"{path.name}: DBF language driver id is set")
            if slug == "ha_long":
                p.expect(
                    bytes.fromhex("48 b9 20 4c 6f 6e 67") in dbf,
                    f"{path.name}: 'Hạ Long' not stored as TCVN3 bytes",
                )
        parcels = pd.concat(frames, ignore_index=True)
    else:
        parcels = pyogrio.read_dataframe(out / "land/parcels.gpkg", layer="parcels")
        _rows(p, manifest, "land/parcels.gpkg", len(parcels))
    p.expect(_epsg(parcels.crs) == CADASTRAL_EPSG, "parcels: CRS is not EPSG:5899")
    p.expect(
        list(parcels.columns[:7])
        == ["MAXA", "SOTO", "SOTHUA", "KHLOAIDAT", "DIENTICH", "CHUSDD", "DIACHI"],
        "parcels: columns differ",
    )
    commune_of_address = parcels["DIACHI"].str.split(", ").str[-1]
    p.expect(
        (commune_of_address == parcels["MAXA"].map(names)).all(),
        "parcels: decoded DIACHI does not end with the commune name",
    )
    p.expect(not parcels.duplicated(["MAXA", "SOTO", "SOTHUA"]).any(), "parcels: duplicate keys")
    valid = shapely.is_valid(parcels.geometry.values)
    bad = set(
        zip(
            parcels["MAXA"][~valid], parcels["SOTO"][~valid], parcels["SOTHUA"][~valid], strict=True
        )
    )
    p.expect(bad == keys, f"parcels: {len(bad)} invalid, manifest lists {len(keys)}")
    p.expect(len(keys) == manifest["invalid_parcels"], "parcels: invalid count mismatch")
    lon, lat, index = _vertices_lonlat(parcels.geometry.values, CADASTRAL_EPSG)
    _inside(p, "parcels", communes, parcels["MAXA"].to_numpy()[index], lon, lat)
    area = shapely.area(parcels.geometry.values[valid])
    rel_err = np.abs(parcels["DIENTICH"].to_numpy()[valid] / area - 1)
    p.expect(float(rel_err.max()) < 0.05, "parcels: DIENTICH far from the real area")


def _rows(p: _Problems, manifest: dict, rel: str, n: int) -> None:
    """The manifest's row count of ``rel`` equals ``n``."""
    p.expect(manifest["files"][rel]["rows"] == n, f"{rel}: {n} rows, manifest says otherwise")


def _check_zoning(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    zoning = pyogrio.read_dataframe(out / "land/zoning_plan.gpkg", layer="quy_hoach")
    _rows(p, manifest, "land/zoning_plan.gpkg", len(zoning))
    p.expect(_epsg(zoning.crs) == CADASTRAL_EPSG, "zoning: CRS is not EPSG:5899")
    p.expect(set(zoning.geom_type) == {"MultiPolygon"}, "zoning: not MultiPolygon")
    p.expect(zoning["ma_khu"].is_unique, "zoning: ma_khu not unique")
    p.expect(shapely.is_valid(zoning.geometry.values).all(), "zoning: invalid geometry")
    lon, lat, index = _vertices_lonlat(zoning.geometry.values, CADASTRAL_EPSG)
    # Zone edges run along the commune boundary: allow for the boundary itself.
    geoms = communes.set_index("commune_code").geometry
    poly = shapely.buffer(geoms[zoning["ma_xa"]].to_numpy(), 1e-6)
    pts = shapely.points(lon, lat)
    p.expect(shapely.covers(poly[index], pts).all(), "zoning: zone outside its commune")


def _check_construction(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    path = out / "construction/buildings.geojson"
    buildings = pyogrio.read_dataframe(path)
    _rows(p, manifest, "construction/buildings.geojson", len(buildings))
    p.expect(_epsg(buildings.crs) == WGS84_EPSG, "buildings: CRS is not EPSG:4326")
    p.expect(set(buildings.geom_type) == {"Polygon"}, "buildings: not Polygon")
    p.expect(buildings["building_id"].is_unique, "buildings: building_id not unique")
    text = path.read_text(encoding="utf-8")[:20000]
    p.expect('"crs"' not in text, "buildings: RFC 7946 files carry no crs member")
    lon, lat, index = _vertices_lonlat(buildings.geometry.values, WGS84_EPSG)
    _inside(p, "buildings", communes, buildings["commune_code"].to_numpy()[index], lon, lat)

    raw = (out / "construction/building_permits.csv").read_bytes()
    p.expect(raw.startswith(b"\xef\xbb\xbf"), "permits: no UTF-8 BOM")
    permits = pd.read_csv(
        out / "construction/building_permits.csv", encoding="utf-8-sig", dtype={"ma_xa": str}
    )
    _rows(p, manifest, "construction/building_permits.csv", len(permits))
    p.expect(permits["so_gp"].is_unique, "permits: so_gp not unique")
    p.expect(permits["ngay_cap"].str.fullmatch(r"\d\d/\d\d/\d{4}").all(), "permits: dates")
    lon, lat = to_wgs84(permits["Y"].to_numpy(), permits["X"].to_numpy())  # X = northing
    _inside(p, "permits", communes, permits["ma_xa"].to_numpy(), lon, lat)


def _check_utility(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    lamps = pyogrio.read_dataframe(out / "utility/street_lamps.gpkg", layer="den_chieu_sang")
    _rows(p, manifest, "utility/street_lamps.gpkg", len(lamps))
    p.expect(_epsg(lamps.crs) == CADASTRAL_EPSG, "lamps: CRS is not EPSG:5899")
    hl = lamps[lamps["lamp_id"].str.startswith("HL-")]
    p.expect(len(hl) == 4300 and hl["road_id"].nunique() == 145, "lamps: Hạ Long not 4300/145")
    lon, lat, index = _vertices_lonlat(lamps.geometry.values, CADASTRAL_EPSG)
    _inside(p, "lamps", communes, lamps["commune_code"].to_numpy()[index], lon, lat)

    wifi = pd.read_csv(out / "utility/wifi_hotspots.csv", dtype={"commune_code": str})
    _rows(p, manifest, "utility/wifi_hotspots.csv", len(wifi))
    p.expect((wifi["hotspot_id"].str.startswith("HL-")).sum() == 107, "wifi: Hạ Long not 107")
    _inside_lonlat(p, "wifi", communes, wifi)

    cameras = pyogrio.read_dataframe(out / "utility/cameras.geojson")
    _rows(p, manifest, "utility/cameras.geojson", len(cameras))
    hl = cameras[cameras["camera_id"].str.startswith("HL-")]
    p.expect(len(hl) == 1300 and hl["sector"].nunique() == 9, "cameras: Hạ Long not 1300/9")
    mc = cameras[cameras["camera_id"].str.startswith("MC-")]["kind"].value_counts().to_dict()
    p.expect(mc == {"smart": 60, "border": 20}, f"cameras: Móng Cái kinds {mc}")
    lon, lat, index = _vertices_lonlat(cameras.geometry.values, WGS84_EPSG)
    _inside(p, "cameras", communes, cameras["commune_code"].to_numpy()[index], lon, lat)

    pipes = pyogrio.read_dataframe(out / "utility/water_pipes.gpkg", layer="ong_cap_nuoc")
    _rows(p, manifest, "utility/water_pipes.gpkg", len(pipes))
    length = shapely.length(pipes.geometry.values)
    p.expect(bool(((length >= 49.9) & (length <= 400.1)).all()), "pipes: length out of 50-400 m")
    lon, lat, index = _vertices_lonlat(pipes.geometry.values, CADASTRAL_EPSG)
    _inside(p, "pipes", communes, pipes["commune_code"].to_numpy()[index], lon, lat)

    sensors = pd.read_csv(out / "utility/env_sensors.csv", dtype={"commune_code": str})
    _rows(p, manifest, "utility/env_sensors.csv", len(sensors))
    _inside_lonlat(p, "sensors", communes, sensors)


def _check_hazard(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    zones = pyogrio.read_dataframe(out / "hazard/flood_zones.gpkg", layer="vung_ngap")
    _rows(p, manifest, "hazard/flood_zones.gpkg", len(zones))
    p.expect(_epsg(zones.crs) == CADASTRAL_EPSG, "flood zones: CRS is not EPSG:5899")
    by = zones.set_index(["gauge_id", "return_period"]).geometry
    for gauge in zones["gauge_id"].unique():
        for small, big in ((10, 50), (50, 100)):
            inner = by[(gauge, small)]
            outer = shapely.buffer(by[(gauge, big)], 0.01)
            p.expect(shapely.covers(outer, inner), f"flood zones: {gauge} {small} ⊄ {big}")
    lon, lat, index = _vertices_lonlat(zones.geometry.values, CADASTRAL_EPSG)
    _inside(p, "flood zones", communes, zones["commune_code"].to_numpy()[index], lon, lat)

    for slug in manifest["cities"]:
        with rasterio.open(out / f"hazard/flood_depth_{slug}.tif") as src:
            p.expect(src.crs.to_epsg() == CADASTRAL_EPSG, f"depth {slug}: CRS")
            p.expect(src.res == (20.0, 20.0) and src.nodata == -9999, f"depth {slug}: grid")
            p.expect(
                src.profile.get("tiled") and src.compression.value == "DEFLATE",
                f"depth {slug}: not tiled+deflate",
            )
            depth = src.read(1)
            rr, cc = np.nonzero(depth > 0)
            xs, ys = rasterio.transform.xy(src.transform, rr, cc)
            zone = shapely.union_all(
                zones[
                    (zones["return_period"] == 100)
                    & zones["zone_id"].str.startswith(f"FZ-{_abbr(manifest, slug)}-")
                ].geometry
            )
            p.expect(
                bool(shapely.contains_xy(zone, np.asarray(xs), np.asarray(ys)).all()),
                f"depth {slug}: wet pixels outside the 100-year zones",
            )
            p.expect(len(rr) > 0, f"depth {slug}: dry everywhere")

    gauges = pd.read_csv(out / "hazard/gauge_stations.csv", dtype={"commune_code": str})
    _rows(p, manifest, "hazard/gauge_stations.csv", len(gauges))
    p.expect(
        ((gauges["alarm_1"] < gauges["alarm_2"]) & (gauges["alarm_2"] < gauges["alarm_3"])).all(),
        "gauges: alarm levels not increasing",
    )
    _inside_lonlat(p, "gauges", communes, gauges)
    readings = pd.read_csv(out / "hazard/gauge_readings.csv")
    _rows(p, manifest, "hazard/gauge_readings.csv", len(readings))
    last = readings.groupby("gauge_id")["observed_at"].max()
    p.expect((last == "2025-10-15T00:00:00+07:00").all(), "readings: wrong last timestamp")
    p.expect((readings.groupby("gauge_id").size() == 168).all(), "readings: not 168 per gauge")
    final = readings.groupby("gauge_id")["water_level_m"].last()
    alarm = gauges.set_index("gauge_id")
    above2 = final > alarm["alarm_2"].reindex(final.index)
    p.expect(list(final.index[above2]) == ["G-HL-01"], "readings: rising gauge is not G-HL-01")


def _check_terrain(p: _Problems, out: Path, manifest: dict, communes: pd.DataFrame) -> None:
    from sdi.hazard.rasters import stats_over_files
    from sdi.samples.terrain import DEM_NODATA, DEM_PIXEL, LANDSLIDE_CLASSES, SURGE_SCENARIOS

    path = out / "hazard/landslide_susceptibility.shp"
    p.expect(path.with_suffix(".cpg").read_text() == "UTF-8", "landslides: .cpg is not UTF-8")
    slides = pyogrio.read_dataframe(path)
    _rows(p, manifest, "hazard/landslide_susceptibility.shp", len(slides))
    p.expect(_epsg(slides.crs) == UTM_EPSG, "landslides: CRS is not EPSG:3405")
    labels = {c[0] for c in LANDSLIDE_CLASSES}
    p.expect(set(slides["MUC_NGUY"]) == labels, "landslides: classes differ")
    lon, lat, index = _vertices_lonlat(slides.geometry.values, UTM_EPSG)
    _inside(p, "landslides", communes, slides["MA_XA"].to_numpy()[index], lon, lat)

    surge = pyogrio.read_dataframe(out / "hazard/storm_surge_zones.kml")
    _rows(p, manifest, "hazard/storm_surge_zones.kml", len(surge))
    lon, lat, index = _vertices_lonlat(surge.geometry.values, WGS84_EPSG)
    _inside(p, "surge zones", communes, surge["ma_xa"].to_numpy()[index], lon, lat)
    by = surge.set_index("ma_vung").geometry
    for key in by.index:
        bigger = f"{key[:-1]}{int(key[-1]) + 1}"
        if bigger in by.index:
            p.expect(
                shapely.covers(shapely.buffer(by[bigger], 1e-6), by[key]),
                f"surge zones: {key} ⊄ {bigger}",
            )

    dems = [out / f"hazard/elevation_{slug}.tif" for slug in manifest["cities"]]
    for dem in dems:
        with rasterio.open(dem) as src:
            p.expect(src.crs.to_epsg() == UTM_EPSG, f"{dem.name}: CRS is not EPSG:3405")
            p.expect(
                src.res == (DEM_PIXEL, DEM_PIXEL) and src.nodata == DEM_NODATA,
                f"{dem.name}: grid",
            )
    # The zone of a surge of h metres is the land below h m: its highest pixel is below h.
    heights = {level: height for level, height, _class in SURGE_SCENARIOS}
    for zone in surge.itertuples(index=False):
        stats = stats_over_files(zone.geometry, dems)
        p.expect(
            stats["count"] > 0 and stats["max"] <= heights[zone.cap_bao] + 0.05,
            f"surge zones: {zone.ma_vung} reaches {stats['max']} m",
        )


def _abbr(manifest: dict, slug: str) -> str:
    return manifest["cities"][slug]["abbr"]
