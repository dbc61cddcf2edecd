"""Build the delivery files of the format tests with GDAL, from small in-memory data.

Every fixture is a few dozen features in Hạ Long (Quảng Ninh, around 107.05° E 20.95° N),
written the way the department concerned delivers it: land-office Shapefiles, MapInfo tables
and DGN sheets in VN-2000 / TM-3 (EPSG:5899) with legacy text encodings, GeoPackage, GeoJSON
and KML from newer systems, Excel CSVs. Natural keys all start with ``FMT-``.

Files are written with pyogrio (the GDAL the product reads with) except where only the GDAL
command-line tools can: DGN (the driver's fixed schema refuses pyogrio's field creation) and
multi-layer GML (``ogr2ogr`` from a GeoPackage).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
import shapely.affinity
from pyogrio.raw import write as ogr_write
from pyproj import Transformer
from rasterio.transform import from_origin

from sdi.etl.encodings import encode_cp1258, encode_tcvn3, encode_vni

SRID = 5899  # VN-2000 / TM-3 107°45', Quảng Ninh's cadastral CRS
COMMUNE = "06685"
SHEET = 12
_TO_TM3 = Transformer.from_crs("EPSG:4326", f"EPSG:{SRID}", always_xy=True)

ADDRESSES = (
    "Tổ 5, Khu 3, Phường Hồng Gai",
    "Thôn 4, Xã Quảng La",
    "Tổ 12, Khu 7, Phường Bãi Cháy",
    "Số 18 đường Trần Hưng Đạo, Phường Hồng Gai",
    "Tổ 2, Khu Tuần Châu",
    "Tổ 9, Khu 1, Phường Hà Khẩu",
)
OWNERS = (
    "Nguyễn Văn Thắng",
    "Trần Thị Hường",
    "Lê Quang Dũng",
    "Phạm Thị Thúy",
    "Đặng Hữu Phước",
    "Vũ Ngọc Ánh",
)
LAND_USE = ("ODT", "ONT+CLN", "CLN", "ODT", "LUC", "DGT")
ROADS = ("Đường Trần Hưng Đạo", "Phố Cao Thắng", "Đường Hạ Long", "Đường 25/4")
SECTORS = ("Bãi Cháy", "Hồng Gai", "Hà Khẩu", "Cột Đồng Hồ")


@dataclass
class Parcel:
    key: str  # natural key as the job builds it
    parcel_no: int
    land_use: str
    address: str
    owner: str
    declared_area: float
    geometry: shapely.Polygon  # EPSG:5899


def parcels(n: int = 24, *, prefix: str = "FMT", lon: float = 107.05, lat: float = 20.95):
    """A block of ``n`` rectangular parcels (about 20 m × 25 m) on one map sheet."""
    x0, y0 = _TO_TM3.transform(lon, lat)
    x0, y0 = round(x0, 3), round(y0, 3)
    out = []
    for i in range(n):
        row, col = divmod(i, 6)
        x = round(x0 + col * 21.5, 3)
        y = round(y0 + row * 26.25, 3)
        w, h = 20.125 + (i % 3) * 0.25, 25.5
        ring = [
            (x, y),
            (round(x + w, 3), y),
            (round(x + w, 3), round(y + h, 3)),
            (x + 0.375, round(y + h, 3)),  # a slightly skewed side: not a perfect box
            (x, y),
        ]
        out.append(
            Parcel(
                key=f"{prefix}-{COMMUNE}-{SHEET}-{i + 1}",
                parcel_no=i + 1,
                land_use=LAND_USE[i % len(LAND_USE)],
                address=ADDRESSES[i % len(ADDRESSES)],
                owner=OWNERS[i % len(OWNERS)],
                declared_area=round(w * h, 1),
                geometry=shapely.Polygon(ring),
            )
        )
    return out


def points_lonlat(n: int, *, lon: float = 107.03, lat: float = 20.93, step: float = 0.0021):
    """``n`` points along a road, lon/lat rounded to 1e-7° (about 1 cm)."""
    return [(round(lon + i * step, 7), round(lat + (i % 5) * step * 0.6, 7)) for i in range(n)]


def encode(text: str, encoding: str) -> bytes:
    return {
        "tcvn3": encode_tcvn3,
        "vni": encode_vni,
        "cp1258": encode_cp1258,
        "utf-8": lambda t: t.encode("utf-8"),
    }[encoding](text)


def _raw(values, encoding: str) -> np.ndarray:
    """Text as the latin-1 string of its bytes in ``encoding``: written with GDAL told
    ISO-8859-1, the file holds exactly those bytes."""
    return np.array([encode(v, encoding).decode("latin-1") for v in values], dtype=object)


def _wkb(geometries) -> np.ndarray:
    return shapely.to_wkb(np.asarray(geometries, dtype=object))


def _remove(path: Path, suffixes) -> None:
    for suffix in suffixes:
        path.with_suffix(suffix).unlink(missing_ok=True)


def _parcel_keys(items: list[Parcel]) -> list[np.ndarray]:
    """Commune, sheet, parcel number and land use: the first fields of every parcel file."""
    return [
        np.array([COMMUNE] * len(items), dtype=object),
        np.array([SHEET] * len(items), dtype=np.int32),
        np.array([p.parcel_no for p in items], dtype=np.int32),
        np.array([p.land_use for p in items], dtype=object),
    ]


# -- Shapefile -----------------------------------------------------------------------------


def parcel_shapefile(
    path: Path, items: list[Parcel], encoding: str, cpg: str | None = None
) -> Path:
    """A land-office parcel shapefile (DBF text in ``encoding``); ``cpg`` is the content of
    the .cpg written beside it, None for none (how old land-office files come)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(path, (".shp", ".shx", ".dbf", ".prj", ".cpg"))
    ogr_write(
        path,
        _wkb([p.geometry for p in items]),
        field_data=[
            *_parcel_keys(items),
            np.array([p.declared_area for p in items]),
            _raw([p.owner for p in items], encoding),
            _raw([p.address for p in items], encoding),
        ],
        fields=["MAXA", "SOTO", "SOTHUA", "KHLOAIDAT", "DIENTICH", "CHUSDD", "DIACHI"],
        driver="ESRI Shapefile",
        geometry_type="Polygon",
        crs=f"EPSG:{SRID}",
        encoding="ISO-8859-1",
    )
    _remove(path, (".cpg",))
    if cpg is not None:
        path.with_suffix(".cpg").write_text(cpg)
    return path


# -- MapInfo ---------------------------------------------------------------------------------


def parcel_mapinfo(path: Path, items: list[Parcel], encoding: str = "tcvn3") -> Path:
    """A MapInfo table as old land offices made them: the charset says WindowsLatin1 while
    the text is TCVN3 (typed with .VnTime fonts); bounds set for millimetre coordinates."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(path.stem + ".*"):
        old.unlink()
    cp1252 = np.array([encode(p.address, encoding).decode("cp1252") for p in items], dtype=object)
    owners = np.array([encode(p.owner, encoding).decode("cp1252") for p in items], dtype=object)
    x0, y0, x1, y1 = shapely.MultiPolygon([p.geometry for p in items]).bounds
    ogr_write(
        path,
        _wkb([p.geometry for p in items]),
        field_data=[*_parcel_keys(items), owners, cp1252],
        fields=["MaXa", "SoTo", "SoThua", "LoaiDat", "ChuSD", "DiaChi"],
        driver="MapInfo File",
        geometry_type="Polygon",
        crs=f"EPSG:{SRID}",
        layer_options={
            "ENCODING": "CP1252",
            "BOUNDS": f"{x0 - 5000:.0f},{y0 - 5000:.0f},{x1 + 5000:.0f},{y1 + 5000:.0f}",
        },
    )
    return path


# -- GeoPackage, GeoJSON, KML ------------------------------------------------------------------


def buildings_geopackage(path: Path, n: int = 18) -> tuple[Path, list[dict]]:
    """Buildings in a GeoPackage (EPSG:5899) with a second spatial layer beside them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = []
    for i, p in enumerate(parcels(n, prefix="FMT-GPKG", lon=107.07, lat=20.97)):
        footprint = shapely.affinity.scale(p.geometry, 0.6, 0.6)
        footprint = shapely.set_precision(footprint, 0.001)
        rows.append(
            {
                "ma_nha": f"FMT-GPKG-N{i + 1:03d}",
                "ten": f"Nhà ở {p.owner}" if i % 3 else f"Trường mầm non {SECTORS[i % 4]}",
                "loai": "nhà ở" if i % 3 else "giáo dục",
                "so_tang": 2 + i % 6,
                "chieu_cao": 7.5 + (i % 6) * 3.25,
                "nam_xd": 1995 + i,
                "geometry": shapely.MultiPolygon([footprint]),
            }
        )
    fields = ["ma_nha", "ten", "loai", "so_tang", "chieu_cao", "nam_xd"]
    outline = shapely.MultiPolygon(
        [shapely.box(*shapely.MultiPolygon([g for r in rows for g in r["geometry"].geoms]).bounds)]
    )
    _gpkg_with_boundary(
        path, rows, fields, ("nha", "MultiPolygon"), ("ranh_gioi_du_an", "Khu đô thị mới", outline)
    )
    return path, rows


def _gpkg_with_boundary(
    path: Path,
    rows: list[dict],
    fields: list[str],
    layer: tuple[str, str],
    boundary: tuple[str, str, shapely.Geometry],
) -> None:
    """A GeoPackage with the features (``layer``: name, geometry type) and, in a second layer
    of the same geometry type, a named boundary — the layout that makes a job name its layer."""
    name, geometry_type = layer
    ogr_write(
        path,
        _wkb([r["geometry"] for r in rows]),
        field_data=[np.array([r[f] for r in rows]) for f in fields],
        fields=fields,
        driver="GPKG",
        layer=name,
        geometry_type=geometry_type,
        crs=f"EPSG:{SRID}",
    )
    boundary_layer, title, geometry = boundary
    ogr_write(
        path,
        _wkb([geometry]),
        field_data=[np.array([title], dtype=object)],
        fields=["ten"],
        driver="GPKG",
        layer=boundary_layer,
        geometry_type=geometry_type,
        crs=f"EPSG:{SRID}",
        append=True,
    )


def cameras_geojson(path: Path, n: int = 20) -> tuple[Path, list[dict]]:
    """Traffic cameras as RFC 7946 GeoJSON (lon/lat, UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = [
        {
            "ma_camera": f"FMT-CAM-{i + 1:03d}",
            "ten": f"Camera nút giao {ROADS[i % 4]} – {SECTORS[i % 4]}",
            "khu_vuc": SECTORS[i % 4],
            "loai": "giao thông" if i % 2 else "an ninh",
            "trang_thai": "hoạt động" if i % 5 else "hỏng",
            "lonlat": xy,
        }
        for i, xy in enumerate(points_lonlat(n))
    ]
    fields = ["ma_camera", "ten", "khu_vuc", "loai", "trang_thai"]
    ogr_write(
        path,
        _wkb([shapely.Point(r["lonlat"]) for r in rows]),
        field_data=[np.array([r[f] for r in rows], dtype=object) for f in fields],
        fields=fields,
        driver="GeoJSON",
        geometry_type="Point",
        crs="EPSG:4326",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7"},
    )
    return path, rows


def wifi_kml(path: Path, n: int = 12) -> tuple[Path, list[dict]]:
    """Free wifi hotspots exported from a web map as KML: one folder per kind of place
    (two folders: the job loads one), Name = hotspot code, description = place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    rows = [
        {
            "Name": f"FMT-WIFI-{i + 1:03d}",
            "Description": f"Wifi miễn phí {SECTORS[i % 4]} – điểm {i + 1}",
            "lonlat": xy,
        }
        for i, xy in enumerate(points_lonlat(n, lon=107.045, lat=20.955, step=0.0017))
    ]
    folders = [
        ("Wifi công cộng", rows),
        (
            "Trạm phát sóng",
            [{"Name": "BTS-01", "Description": "Viettel", "lonlat": (107.02, 20.92)}],
        ),
    ]
    for i, (folder, items) in enumerate(folders):
        ogr_write(
            path,
            _wkb([shapely.Point(r["lonlat"]) for r in items]),
            field_data=[
                np.array([r["Name"] for r in items], dtype=object),
                np.array([r["Description"] for r in items], dtype=object),
            ],
            fields=["Name", "description"],  # LIBKML's names for <name> and <description>
            driver="LIBKML",
            layer=folder,
            geometry_type="Point",
            crs="EPSG:4326",
            append=i > 0,
        )
    return path, rows


# -- CSV -------------------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str, *, bom=False):
    """A CSV the way Excel writes it: quoted where needed, CRLF, in ``encoding``."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = b"".join(encode(line, encoding) + b"\n" for line in buffer.getvalue().split("\n")[:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


# -- GML (multi-layer) and DGN need the GDAL command-line tools ----------------------------------


def ogr2ogr() -> str | None:
    return shutil.which("ogr2ogr")


def _run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")


def zoning_gml(path: Path, sidecar: str, n: int = 10) -> tuple[Path, list[dict]]:
    """A planning GML (GML 3, srsName urn:ogc:def:crs:EPSG::5899) with two feature types
    (zones and plan boundary); ``sidecar`` is "xsd" (as GDAL writes it), "gfs" or "none"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".gml", ".xsd", ".gfs"):
        path.with_suffix(suffix).unlink(missing_ok=True)
    source = path.with_suffix(".source.gpkg")
    source.unlink(missing_ok=True)
    rows = []
    for i, p in enumerate(parcels(n, prefix="FMT-GML", lon=107.08, lat=20.92)):
        rows.append(
            {
                "ma_o": f"FMT-GML-{sidecar}-{i + 1:02d}",
                "ten_o": f"Ô quy hoạch {i + 1} – đất ở đô thị" if i % 2 else "Cây xanh công cộng",
                "chuc_nang": "ODT" if i % 2 else "DKV",
                "he_so_sd": 2.5 + (i % 3) * 0.5,
                "tang_cao": 3 + i % 5,
                "ma_qh": "QH-1-500-HL-2024",
                "ngay_duyet": "2024-06-28",
                "geometry": p.geometry,
            }
        )
    fields = ["ma_o", "ten_o", "chuc_nang", "he_so_sd", "tang_cao", "ma_qh", "ngay_duyet"]
    boundary = shapely.MultiPolygon([r["geometry"] for r in rows]).envelope
    _gpkg_with_boundary(
        source,
        rows,
        fields,
        ("o_quy_hoach", "Polygon"),
        ("ranh_gioi_quy_hoach", "Quy hoạch chi tiết 1/500 khu dân cư", boundary),
    )
    _run(
        [
            ogr2ogr(),
            "-f",
            "GML",
            str(path),
            str(source),
            "-dsco",
            "FORMAT=GML3",
            "-dsco",
            "SRSNAME_FORMAT=OGC_URN",
        ]
    )
    source.unlink()
    if sidecar != "xsd":
        path.with_suffix(".xsd").unlink(missing_ok=True)
    if sidecar == "gfs":  # let GDAL write the .gfs it derives, as QGIS users often ship it
        pyogrio.read_info(path, layer="o_quy_hoach", WRITE_GFS="YES")
        assert path.with_suffix(".gfs").exists()
    return path, rows


# DGN v7 levels of a cadastral sheet (as in the national cadastral map standard's practice:
# boundaries and labels on separate levels).
LEVEL_BOUNDARY, LEVEL_PARCEL_NO, LEVEL_LAND_USE, LEVEL_ADDRESS = 10, 13, 14, 15


def parcel_dgn(path: Path, items: list[Parcel], encoding: str = "tcvn3") -> Path:
    """A MicroStation v7 cadastral sheet: each parcel a closed Shape on level 10, with text
    elements inside it: its number (level 13), land-use code (level 14) and a TCVN3 address
    label (level 15); plus a stray sheet title outside every parcel. One UOR is 1 mm."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    csv_path = path.with_suffix(".elements.csv")
    lines = [b"WKT,Level,Text"]
    for p in items:
        inside = p.geometry.representative_point()
        lines.append(b'"' + p.geometry.wkt.encode() + b'",%d,""' % LEVEL_BOUNDARY)
        for level, text, dy in (
            (LEVEL_PARCEL_NO, str(p.parcel_no), 6.0),
            (LEVEL_LAND_USE, p.land_use, 0.0),
            (LEVEL_ADDRESS, p.address, -6.0),
        ):
            where = shapely.Point(inside.x - 4.0, inside.y + dy)
            assert p.geometry.contains(where)
            lines.append(
                b'"' + where.wkt.encode() + b'",%d,"' % level + encode(text, encoding) + b'"'
            )
    title = shapely.Point(items[0].geometry.bounds[0], items[0].geometry.bounds[1] - 30)
    lines.append(b'"' + title.wkt.encode() + b'",63,"' + encode("Tờ bản đồ số 12", encoding) + b'"')
    csv_path.write_bytes(b"\n".join(lines) + b"\n")
    x0, y0 = (round(v, -3) - 1000 for v in items[0].geometry.bounds[:2])
    first = items[0].geometry.exterior.coords[0]
    # GDAL's DGN writer takes ORIGIN with the opposite sign of the global origin it stores
    # (checked on GDAL 3.6); try that first and verify by reading the file back.
    for origin in (f"-{x0:.0f},-{y0:.0f},0", f"{x0:.0f},{y0:.0f},0"):
        path.unlink(missing_ok=True)
        _run(
            [
                ogr2ogr(),
                "-f",
                "DGN",
                str(path),
                str(csv_path),
                "-oo",
                "GEOM_POSSIBLE_NAMES=WKT",
                "-oo",
                "KEEP_GEOM_COLUMNS=NO",
                "-dsco",
                f"ORIGIN={origin}",
                "-dsco",
                "SUB_UNITS_PER_MASTER_UNIT=1000",
                "-dsco",
                "UOR_PER_SUB_UNIT=1",
            ]
        )
        with pyogrio.open_arrow(path, use_pyarrow=True, columns=["Type"]) as (meta, reader):
            table = reader.read_all()
        shapes = shapely.from_wkb(table[meta["geometry_name"] or "wkb_geometry"].to_numpy())
        got = shapes[0].exterior.coords[0]
        if abs(got[0] - first[0]) < 0.01 and abs(got[1] - first[1]) < 0.01:
            break
    else:
        raise RuntimeError(f"ogr2ogr wrote {path} with wrong coordinates: {got} for {first}")
    csv_path.unlink()
    return path


# -- GeoTIFF -------------------------------------------------------------------------------------


def flood_depth_tiff(path: Path, *, with_crs: bool = True) -> Path:
    """A small flood-depth grid (metres) in EPSG:5899, 10 m cells; optionally without a CRS
    (as some modelling tools export it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x0, y0 = _TO_TM3.transform(107.06, 20.96)
    depth = np.clip(np.add.outer(np.arange(40) * 0.05, np.arange(60) * 0.02) - 0.5, 0, None)
    profile = {
        "driver": "GTiff",
        "width": 60,
        "height": 40,
        "count": 1,
        "dtype": "float32",
        "nodata": -9999.0,
        "transform": from_origin(round(x0), round(y0), 10, 10),
    }
    if with_crs:
        profile["crs"] = f"EPSG:{SRID}"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(depth.astype("float32"), 1)
        dst.update_tags(1, unit="m")
    return path
