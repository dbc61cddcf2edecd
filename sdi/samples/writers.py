"""File writers of the sample generator: each writes the format a department really delivers,
as reproducibly as the drivers allow (fixed DBF and GeoPackage dates, no timestamps)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import fiona
import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from affine import Affine

from sdi.etl.encodings import encode_tcvn3
from sdi.samples.common import CADASTRAL_EPSG, REFERENCE_DATE, WGS84_EPSG, transformer

FIXED_DATE = str(REFERENCE_DATE)  # written where a driver insists on a "last changed" date


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reproject(geoms: np.ndarray, src: int = CADASTRAL_EPSG, dst: int = WGS84_EPSG) -> np.ndarray:
    """Reproject a shapely geometry array (always_xy)."""
    tr = transformer(src, dst)

    def _apply(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(np.asarray(geoms), _apply)


def _remove(path: Path, suffixes: Iterable[str] = ("",)) -> None:
    for suffix in suffixes:
        p = path.with_suffix(suffix) if suffix else path
        if p.exists():
            p.unlink()


def write_gpkg(
    df: pd.DataFrame,
    path: Path,
    layer: str,
    *,
    columns: Iterable[str],
    geometry_type: str,
    epsg: int,
    append: bool = False,
) -> None:
    """Write (or append to) a GeoPackage layer, UTF-8, with a fixed last-change date."""
    if not append:
        _remove(path)
    gdf = gpd.GeoDataFrame(
        df[list(columns)], geometry=df["geometry"].to_numpy(), crs=f"EPSG:{epsg}"
    )
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{FIXED_DATE}T00:00:00.000Z"})
    try:
        pyogrio.write_dataframe(
            gdf,
            path,
            layer=layer,
            driver="GPKG",
            geometry_type=geometry_type,
            append=append,
            use_arrow=True,
        )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})


def _tcvn3_text(values: pd.Series) -> pd.Series:
    """Unicode → TCVN3 bytes carried as latin-1 text, so the driver writes the TCVN3 bytes."""
    uniques = pd.unique(values.astype(object))
    table = {u: encode_tcvn3(u).decode("latin-1") for u in uniques}
    return values.map(table)


def write_shapefile_tcvn3(
    df: pd.DataFrame, path: Path, *, fields: dict[str, str], epsg: int
) -> None:
    """A land-office shapefile: DBF text in TCVN3, a .prj, no .cpg, DBF date fixed."""
    _remove(path, (".shp", ".shx", ".dbf", ".prj", ".cpg"))
    out = df[list(fields)].copy()
    for name, kind in fields.items():
        if kind.startswith("str"):
            out[name] = _tcvn3_text(out[name])
    schema = {"geometry": "Polygon", "properties": dict(fields)}
    rings = shapely.get_coordinates(shapely.get_exterior_ring(df["geometry"].to_numpy()))
    rings = rings.reshape(len(df), -1, 2)  # parcels are all 5-point rings
    records = out.to_dict("records")
    with fiona.open(
        path,
        "w",
        driver="ESRI Shapefile",
        crs=f"EPSG:{epsg}",
        schema=schema,
        encoding="latin1",
        DBF_DATE_LAST_UPDATE=FIXED_DATE,
    ) as sink:
        sink.writerecords(
            {"geometry": {"type": "Polygon", "coordinates": [ring.tolist()]}, "properties": rec}
            for ring, rec in zip(rings, records, strict=True)
        )
    # GDAL writes a .cpg for the encoding; old land-office files have none.
    _remove(path, (".cpg",))


def write_shapefile(
    df: pd.DataFrame, path: Path, *, columns: Iterable[str], geometry_type: str, epsg: int
) -> None:
    """A newer office's shapefile: UTF-8 DBF declared by a .cpg, a .prj, DBF date fixed.

    Geometries are EPSG:5899 and written in ``epsg``."""
    _remove(path, (".shp", ".shx", ".dbf", ".prj", ".cpg"))
    geoms = df["geometry"].to_numpy()
    if epsg != CADASTRAL_EPSG:
        geoms = reproject(geoms, CADASTRAL_EPSG, epsg)
    gdf = gpd.GeoDataFrame(df[list(columns)], geometry=geoms, crs=f"EPSG:{epsg}")
    pyogrio.write_dataframe(
        gdf,
        path,
        driver="ESRI Shapefile",
        geometry_type=geometry_type,
        encoding="UTF-8",
        layer_options={"DBF_DATE_LAST_UPDATE": FIXED_DATE},
    )


def write_kml(df: pd.DataFrame, path: Path, *, columns: Iterable[str]) -> None:
    """KML (WGS84 lon/lat) as exported from Google Earth / GIS tools: ``Name`` is the
    placemark's name, the other columns its ExtendedData."""
    _remove(path)
    gdf = gpd.GeoDataFrame(
        df[list(columns)], geometry=reproject(df["geometry"].to_numpy()), crs=f"EPSG:{WGS84_EPSG}"
    )
    pyogrio.write_dataframe(gdf, path, driver="KML", layer=path.stem)


def write_geojson(df: pd.DataFrame, path: Path, *, columns: Iterable[str]) -> None:
    """RFC 7946 GeoJSON (WGS84 lon/lat, 7 decimals) from EPSG:5899 geometries."""
    _remove(path)
    gdf = gpd.GeoDataFrame(
        df[list(columns)], geometry=reproject(df["geometry"].to_numpy()), crs=f"EPSG:{WGS84_EPSG}"
    )
    pyogrio.write_dataframe(
        gdf,
        path,
        driver="GeoJSON",
        layer=path.stem,
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_NAME": "NO"},
    )


def write_csv(df: pd.DataFrame, path: Path, *, bom: bool = False, crlf: bool = False) -> None:
    """CSV, UTF-8 (with a BOM and CRLF line ends when it imitates an Excel export)."""
    df.to_csv(
        path,
        index=False,
        encoding="utf-8-sig" if bom else "utf-8",
        lineterminator="\r\n" if crlf else "\n",
    )


def lonlat_columns(x: np.ndarray, y: np.ndarray, decimals: int = 6) -> tuple[list, list]:
    """EPSG:5899 x/y → lon/lat strings with a fixed number of decimals."""
    lon, lat = transformer(CADASTRAL_EPSG, WGS84_EPSG).transform(x, y)
    fmt = f"%.{decimals}f"
    return list(np.char.mod(fmt, lon)), list(np.char.mod(fmt, lat))


def write_geotiff(
    array: np.ndarray,
    transform: Affine,
    path: Path,
    *,
    epsg: int,
    nodata: float,
    unit: str | None = None,
) -> None:
    """A tiled, deflate-compressed single-band float32 GeoTIFF (band ``unit`` tag if given)."""
    _remove(path)
    profile = {
        "driver": "GTiff",
        "height": array.shape[0],
        "width": array.shape[1],
        "count": 1,
        "dtype": "float32",
        "crs": f"EPSG:{epsg}",
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 3,
    }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.float32), 1)
        if unit:
            dst.update_tags(1, unit=unit)
    aux = Path(str(path) + ".aux.xml")
    if aux.exists():
        os.remove(aux)
