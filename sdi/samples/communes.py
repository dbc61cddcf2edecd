"""The 54 communes of Quảng Ninh (2025), the four cities, and synthetic commune polygons.

The reference data only holds centroids and official areas, so each commune polygon is the
Voronoi cell of its centroid intersected with a disc of the official area: the polygons do not
overlap and their areas are close to the official ones. Cities are the former districts
193 Hạ Long, 196 Uông Bí, 195 Cẩm Phả and 194 Móng Cái; a 2025 commune belongs to a city when
the pre-2025 commune with the same code (or else the majority of its old communes) was there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from sdi.samples.common import to_cadastral

REFERENCE_PARTS = ("etl", "reference", "vn-admin-units-2025")
COMMUNES_CSV = "quang_ninh_communes_2025.csv"
OLD_TO_NEW_CSV = "quang_ninh_old_to_new_2025.csv"
LEGACY_CSV = "quang_ninh_wards_legacy_pre2025.csv"

# Margin kept between generated features and the commune boundary (metres, EPSG:5899).
INNER_MARGIN_M = 10.0
# A 2025 centroid further than this from the mean of its old communes' centroids is a bad
# geocode (two communes in the reference sit in Hạ Long bay, ~100 km from their islands).
CENTROID_TOLERANCE_M = 20_000.0


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
    legacy = pd.read_csv(ref / LEGACY_CSV, dtype={"commune_code": str})
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
    df["x"], df["y"] = x, y
    df["centroid_source"] = np.where(bad, "legacy_mean", "reference")

    points = shapely.points(x, y)
    envelope = shapely.box(x.min() - 2e5, y.min() - 2e5, x.max() + 2e5, y.max() + 2e5)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(points), extend_to=envelope, ordered=True)
    )
    discs = shapely.buffer(points, radius, quad_segs=32)
    polygons = shapely.intersection(cells, discs)
    # Guard against any reordering: each cell must hold its own centroid.
    if not shapely.contains_xy(polygons, x, y).all():  # pragma: no cover - GEOS safety net
        raise RuntimeError("Voronoi cells are not in centroid order")
    df["geometry"] = polygons
    inner = shapely.buffer(polygons, -INNER_MARGIN_M)
    shapely.prepare(inner)
    df["inner"] = inner
    return df


def city_communes(communes: pd.DataFrame, city: City) -> pd.DataFrame:
    """The communes of one city, sorted by code."""
    return communes[communes["city"] == city.slug].reset_index(drop=True)
