"""The 54 communes of Quảng Ninh (2025), the four cities, and synthetic commune polygons.

The reference data holds centroids (of the 54 communes and of the 171 pre-2025 communes they
merged) but no boundaries, so each commune polygon is the union of the Voronoi cells of its
own centroid and of its pre-2025 communes' centroids, clipped to the real outline of the
province (mainland and islands, ``etl/reference/qn-province-outline``): the polygons tile the
province's land, islands stay islands and go to the commune whose seeds are nearest (the
islands of Vân Đồn and Cô Tô to those special zones). Cities are the former districts
193 Hạ Long, 196 Uông Bí, 195 Cẩm Phả and 194 Móng Cái; a 2025 commune belongs to a city when
the pre-2025 commune with the same code (or else the majority of its old communes) was there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from sdi.samples.common import CADASTRAL_EPSG, WGS84_EPSG, to_cadastral, transformer

REFERENCE_PARTS = ("etl", "reference", "vn-admin-units-2025")
OUTLINE_PARTS = ("etl", "reference", "qn-province-outline")
OUTLINE_GEOJSON = "quang_ninh_province_outline.geojson"
COMMUNES_CSV = "quang_ninh_communes_2025.csv"
OLD_TO_NEW_CSV = "quang_ninh_old_to_new_2025.csv"
LEGACY_CSV = "quang_ninh_wards_legacy_pre2025.csv"

# Margin kept between generated features and the commune boundary (metres, EPSG:5899).
INNER_MARGIN_M = 10.0
# A 2025 centroid further than this from the mean of its old communes' centroids is a bad
# geocode (two communes in the reference sit in Hạ Long bay, ~100 km from their islands).
CENTROID_TOLERANCE_M = 20_000.0
BOUNDS_TOLERANCE_DEG = 0.01
# A frame origin (where a commune's street grid starts) at least this far inside the commune.
ORIGIN_DEPTH_M = 400.0


@dataclass(frozen=True)
class City:
    """One of the four smart cities (a former district)."""

    slug: str
    name: str
    district_code: str
    abbr: str
    index: int


CITIES: tuple[City, ...] = (
    City("ha_long", "Hạ Long", "193", "HL", 0),
    City("uong_bi", "Uông Bí", "196", "UB", 1),
    City("cam_pha", "Cẩm Phả", "195", "CP", 2),
    City("mong_cai", "Móng Cái", "194", "MC", 3),
)
CITY_BY_SLUG = {c.slug: c for c in CITIES}
CITY_BY_DISTRICT = {c.district_code: c for c in CITIES}


def default_reference_dir() -> Path:
    """The administrative reference data shipped with the project."""
    from sdi.settings import get_settings

    return get_settings().home.joinpath(*REFERENCE_PARTS)


def default_outline_path() -> Path:
    """The province outline shipped with the project (CRS84 GeoJSON)."""
    from sdi.settings import get_settings

    return get_settings().home.joinpath(*OUTLINE_PARTS, OUTLINE_GEOJSON)


@lru_cache(maxsize=2)
def load_outline(path: Path | None = None) -> shapely.Geometry:
    """The province's land (mainland and islands) as one EPSG:5899 MultiPolygon."""
    src = Path(path) if path else default_outline_path()
    data = json.loads(src.read_text(encoding="utf-8"))
    parts = [shapely.from_geojson(json.dumps(f["geometry"])) for f in data["features"]]
    land = shapely.make_valid(shapely.union_all(parts))
    tr = transformer(WGS84_EPSG, CADASTRAL_EPSG)

    def _apply(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    land = shapely.transform(land, _apply)
    polys = shapely.get_parts(land)
    polys = polys[shapely.get_type_id(polys) == 3]
    return shapely.multipolygons(polys)


def _city_of(code: str, mapping: pd.DataFrame) -> str:
    rows = mapping[mapping["new_commune_code"] == code]
    same = rows[rows["old_commune_code"] == code]
    if len(same):
        district = same["old_district_code"].iloc[0]
    elif len(rows):
        counts = rows["old_district_code"].value_counts()
        district = sorted(counts[counts == counts.max()].index)[0]
    else:
        return ""
    city = CITY_BY_DISTRICT.get(district)
    return city.slug if city else ""


def load_communes(reference_dir: Path | None = None) -> pd.DataFrame:
    """Read the 2025 communes with their city, corrected centroid (EPSG:5899) and polygons.

    Columns: commune_code, commune_name, commune_type, province_code, area_km2, lat, lon,
    city, x, y, centroid_source, geometry (EPSG:5899 Polygon), inner (geometry shrunk by
    ``INNER_MARGIN_M``, prepared for containment tests). Sorted by commune code.
    """
    ref = Path(reference_dir) if reference_dir else default_reference_dir()
    communes = pd.read_csv(ref / COMMUNES_CSV, dtype={"commune_code": str, "province_code": str})
    mapping = pd.read_csv(ref / OLD_TO_NEW_CSV, dtype=str)
    legacy = _fix_legacy_centroids(pd.read_csv(ref / LEGACY_CSV, dtype={"commune_code": str}))
    communes = communes.sort_values("commune_code", kind="stable").reset_index(drop=True)
    df = pd.DataFrame(
        {
            "commune_code": communes["commune_code"],
            "commune_name": communes["commune"],
            "commune_type": communes["commune_type"],
            "province_code": communes["province_code"].str.zfill(2),
            "area_km2": communes["area_km2"].astype(float),
            "lat": communes["lat"].astype(float),
            "lon": communes["lon"].astype(float),
        }
    )
    df["city"] = [_city_of(code, mapping) for code in df["commune_code"]]

    # Centroid sanity check against the pre-2025 communes that were merged into each one.
    merged = mapping.merge(
        legacy[["commune_code", "lat", "lon"]], left_on="old_commune_code", right_on="commune_code"
    )
    old_mean = merged.groupby("new_commune_code")[["lat", "lon"]].mean()
    old_lat = df["commune_code"].map(old_mean["lat"]).to_numpy(dtype=float)
    old_lon = df["commune_code"].map(old_mean["lon"]).to_numpy(dtype=float)
    x, y = to_cadastral(df["lon"].to_numpy(), df["lat"].to_numpy())
    ox, oy = to_cadastral(old_lon, old_lat)
    radius = np.sqrt(df["area_km2"].to_numpy() * 1e6 / np.pi)
    off = np.hypot(x - ox, y - oy)
    bad = np.isfinite(off) & (off > np.maximum(CENTROID_TOLERANCE_M, 3 * radius))
    x = np.where(bad, ox, x)
    y = np.where(bad, oy, y)

    polygons = _voronoi_communes(df["commune_code"].to_numpy(), x, y, mapping, legacy)
    # The street grid starts at the centroid when it lies well inside the commune, otherwise
    # at the nearest point that does (a centroid at sea, or on a thin peninsula).
    deep = shapely.buffer(polygons, -ORIGIN_DEPTH_M)
    deep = np.where(shapely.is_empty(deep), polygons, deep)
    pts = shapely.points(x, y)
    outside = ~shapely.contains(deep, pts)
    for i in np.flatnonzero(outside):
        nearest = shapely.shortest_line(deep[i], pts[i])
        x[i], y[i] = shapely.get_coordinates(nearest)[0]
    df["x"], df["y"] = x, y
    df["centroid_source"] = np.where(bad, "legacy_mean", np.where(outside, "outline", "reference"))
    df["geometry"] = polygons
    inner = shapely.buffer(polygons, -INNER_MARGIN_M)
    shapely.prepare(inner)
    df["inner"] = inner
    return df


def _fix_legacy_centroids(legacy: pd.DataFrame) -> pd.DataFrame:
    """Replace a pre-2025 centroid lying outside its own bounding box (by more than
    ``BOUNDS_TOLERANCE_DEG``) by the box's centre: one bad geocode, Kỳ Thượng 07033, sits in
    Bãi Cháy, 30 km south of its box."""
    ends = legacy["commune_bounds"].str.split(" – ", expand=True)
    lo = ends[0].str.split(",", expand=True).astype(float)
    hi = ends[1].str.split(",", expand=True).astype(float)
    lat, lon = legacy["lat"].astype(float), legacy["lon"].astype(float)
    tol = BOUNDS_TOLERANCE_DEG
    bad = (lat < lo[0] - tol) | (lat > hi[0] + tol) | (lon < lo[1] - tol) | (lon > hi[1] + tol)
    out = legacy.copy()
    out["lat"] = np.where(bad, (lo[0] + hi[0]) / 2, lat)
    out["lon"] = np.where(bad, (lo[1] + hi[1]) / 2, lon)
    return out


def _voronoi_communes(
    codes: np.ndarray, x: np.ndarray, y: np.ndarray, mapping: pd.DataFrame, legacy: pd.DataFrame
) -> np.ndarray:
    """Commune polygons: Voronoi cells of the communes' and their old communes' centroids,
    merged per commune and clipped to the province's land."""
    # Each old commune seeds the new commune it went to (its default one when it was split).
    rows = mapping.sort_values("split_default", key=lambda c: c != "True", kind="stable")
    new_of_old = rows.drop_duplicates("old_commune_code").set_index("old_commune_code")
    old = legacy[legacy["commune_code"].isin(new_of_old.index)]
    ox, oy = to_cadastral(old["lon"].to_numpy(dtype=float), old["lat"].to_numpy(dtype=float))
    label = old["commune_code"].map(new_of_old["new_commune_code"]).to_numpy()
    index = {c: i for i, c in enumerate(codes)}
    keep = np.isin(label, codes)
    sx = np.concatenate([x, ox[keep]])
    sy = np.concatenate([y, oy[keep]])
    owner = np.concatenate([np.arange(len(codes)), [index[c] for c in label[keep]]])
    # Seeds closer than 1 m (an old commune whose centroid is the new one's) count once.
    _, first = np.unique(np.round(np.stack([sx, sy], 1)), axis=0, return_index=True)
    first = np.sort(first)
    sx, sy, owner = sx[first], sy[first], owner[first]
    seeds = shapely.points(sx, sy)
    envelope = shapely.box(sx.min() - 2e5, sy.min() - 2e5, sx.max() + 2e5, sy.max() + 2e5)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=envelope, ordered=True)
    )
    if not shapely.contains(cells, seeds).all():  # pragma: no cover - GEOS safety net
        raise RuntimeError("Voronoi cells are not in seed order")
    merged = np.array(
        [shapely.union_all(cells[owner == i], grid_size=0.01) for i in range(len(codes))]
    )
    land = load_outline()
    shapely.prepare(land)
    polygons = shapely.intersection(merged, land, grid_size=0.01)
    parts, part_of = shapely.get_parts(polygons, return_index=True)
    ok = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 1.0)
    return shapely.multipolygons(parts[ok], indices=part_of[ok])


def city_communes(communes: pd.DataFrame, city: City) -> pd.DataFrame:
    """The communes of one city, sorted by code."""
    return communes[communes["city"] == city.slug].reset_index(drop=True)
