"""A nation of sample data: ``sdi sample generate --provinces N`` (issue 14).

The 34 provinces of 2025 (codes: ``etl/reference/vn_provinces.csv``) each get a copy of the
Quảng Ninh sample's geography — its 54 communes, their parcels and zoning — moved to a slot of
its own near the province's centre, so that no two provinces overlap (Quảng Ninh itself stays
where it is, with its real commune codes; ``_slots``), with
as many parcels as the province's share of the country's population gives it: Hồ Chí Minh
City about 12.5 % of the parcels, Lai Châu about 0.45 %. Commune codes of the other provinces
are made up and unique nationally: the province code and 900 + the template commune's
index (``01900`` …). Zone codes are prefixed with the province code.

Written: ``admin/communes_2025.gpkg`` (every province's communes, EPSG:4326),
``land/parcels_<code>.gpkg`` (one GeoPackage per province, layer ``parcels``, EPSG:5899,
UTF-8: the land office of each province delivers its own), ``land/zoning_plan.gpkg`` and
``manifest.json``. The default generator (no ``--provinces``) is untouched.

Centres, commune counts and areas: ``vietnamadminunits`` 1.0.4 (the source of
``etl/reference/vn-admin-units-2025``); population: GSO 2024 estimates summed over each
merged province, rounded (millions).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from sdi.samples.common import CADASTRAL_EPSG, WGS84_EPSG
from sdi.samples.communes import CITIES, load_communes
from sdi.samples.land import PARCEL_COLUMNS, generate_parcels, generate_zoning, to_multi
from sdi.samples.writers import reproject, write_gpkg

REFERENCE = Path(__file__).resolve().parents[2] / "etl" / "reference" / "vn_provinces.csv"
TEMPLATE = "22"  # Quảng Ninh: the sample's own province, kept in place
PARCELS_PER_CITY_AT_SCALE_1 = 6000  # sdi.samples.land at scale 1.0

# code → (latitude, longitude, communes in 2025, area km², population in millions)
PROVINCES: dict[str, tuple[float, float, int, int, float]] = {
    "01": (21.000, 105.698, 126, 3360, 8.7),
    "04": (22.746, 106.083, 56, 6700, 0.6),
    "08": (22.490, 105.099, 124, 13587, 1.9),
    "11": (21.477, 103.232, 45, 9751, 0.6),
    "12": (22.318, 103.185, 38, 9069, 0.5),
    "14": (21.195, 104.069, 75, 13859, 1.3),
    "15": (22.061, 104.347, 99, 13150, 1.8),
    "19": (22.024, 105.824, 92, 8135, 1.8),
    "20": (21.774, 106.728, 65, 8218, 0.8),
    "22": (21.264, 107.223, 54, 6211, 1.4),
    "24": (21.243, 106.167, 99, 4719, 3.6),
    "25": (20.707, 105.333, 148, 9369, 4.0),
    "31": (20.876, 106.470, 114, 3195, 4.7),
    "33": (20.453, 106.463, 104, 3661, 3.6),
    "37": (20.312, 106.046, 129, 5648, 4.4),
    "38": (20.047, 105.317, 166, 11115, 3.7),
    "40": (19.237, 104.944, 130, 16489, 3.4),
    "42": (18.291, 105.735, 69, 6001, 1.3),
    "44": (17.241, 106.527, 78, 11549, 1.9),
    "46": (16.332, 107.517, 40, 4947, 1.2),
    "48": (15.631, 107.966, 94, 11866, 3.1),
    "51": (14.769, 108.143, 96, 14923, 2.2),
    "52": (13.890, 108.438, 135, 20954, 3.6),
    "56": (12.069, 108.961, 65, 7990, 2.2),
    "66": (12.707, 108.470, 102, 18199, 3.3),
    "68": (11.674, 107.968, 124, 23968, 3.9),
    "75": (11.437, 107.034, 95, 12502, 4.5),
    "79": (10.993, 106.638, 168, 6771, 14.0),
    "80": (10.694, 106.123, 96, 7388, 3.3),
    "82": (10.429, 105.999, 102, 6163, 4.4),
    "86": (9.995, 106.292, 124, 6294, 4.3),
    "91": (10.179, 105.096, 102, 10110, 4.9),
    "92": (9.744, 105.757, 103, 6316, 4.2),
    "96": (9.136, 105.182, 64, 6310, 2.6),
}


def province_codes(reference: Path = REFERENCE) -> list[str]:
    """The 2025 provinces' codes in the reference list's order, Quảng Ninh first."""
    with reference.open(encoding="utf-8") as f:
        codes = [r["code"] for r in csv.DictReader(f) if r["vintage"] == "2025" and r["code"]]
    unknown = sorted(set(codes) ^ set(PROVINCES))
    if unknown:
        raise ValueError(f"{reference}: province codes {unknown} do not match sdi.samples.nation")
    return [TEMPLATE, *(c for c in codes if c != TEMPLATE)]


def parcels_per_province(
    provinces: int, parcels: int, fixed: dict[str, int] | None = None
) -> dict[str, int]:
    """How many parcels each of the first ``provinces`` provinces gets: ``parcels`` shared by
    population (at least one each); ``fixed`` provinces get the count given (the cost-growth
    bench keeps the province it re-delivers the same size at every step)."""
    if not 1 <= provinces <= len(PROVINCES):
        raise ValueError(f"provinces must be 1 … {len(PROVINCES)}, not {provinces}")
    fixed = dict(fixed or {})
    codes = province_codes()[:provinces]
    shared = [c for c in codes if c not in fixed]
    rest = parcels - sum(fixed.get(c, 0) for c in codes)
    if rest < len(shared):
        raise ValueError(f"parcels ({parcels}) must be at least one per province")
    counts = {c: fixed[c] for c in codes if c in fixed}
    if shared:
        weights = np.array([PROVINCES[c][4] for c in shared])
        shares = np.maximum(1, np.floor(rest * weights / weights.sum())).astype(int)
        shares[int(np.argmax(weights))] += rest - int(shares.sum())  # the rounding remainder
        counts.update(zip(shared, (int(n) for n in shares), strict=True))
    return {c: counts[c] for c in codes}


def _offset(code: str) -> tuple[float, float]:
    """Metres (EPSG:5899) from Quảng Ninh's centre to the province's."""
    to_cadastral = Transformer.from_crs(WGS84_EPSG, CADASTRAL_EPSG, always_xy=True)
    lat0, lon0 = PROVINCES[TEMPLATE][:2]
    lat, lon = PROVINCES[code][:2]
    x0, y0 = to_cadastral.transform(lon0, lat0)
    x, y = to_cadastral.transform(lon, lat)
    return x - x0, y - y0


SLOT_MARGIN = 1.05  # a slot is 5 % larger than the template: two provinces never touch
SLOT_BOUNDS = (102.2, 8.4, 109.8, 23.4)  # lon/lat every slot lies within (the country's box)


def _slots(template: tuple[float, float, float, float], codes: list[str]) -> dict[str, tuple]:
    """Each province's offset (metres, EPSG:5899) from Quảng Ninh's template: a slot of the
    template's size of its own in a grid around Quảng Ninh (which keeps its place), the free
    slot nearest to the province's centre, the most populous provinces choosing first.

    Every province is a copy of Quảng Ninh's 130 km of geography: moved to the provinces' own
    centres (tens of km apart in the north) they would overlap, and a province's area would
    hold its neighbours' parcels too (the cost-growth bench would count them)."""
    minx, miny, maxx, maxy = template
    width, height = (maxx - minx) * SLOT_MARGIN, (maxy - miny) * SLOT_MARGIN
    to_lonlat = Transformer.from_crs(CADASTRAL_EPSG, WGS84_EPSG, always_xy=True)
    west, south, east, north = SLOT_BOUNDS
    free = []
    for i in range(-15, 16):
        for j in range(-35, 36):
            if (i, j) == (0, 0):
                continue
            dx, dy = i * width, j * height
            lons, lats = to_lonlat.transform(
                [minx + dx, maxx + dx, minx + dx, maxx + dx],
                [miny + dy, miny + dy, maxy + dy, maxy + dy],
            )
            inside = min(lons) >= west and max(lons) <= east
            if inside and min(lats) >= south and max(lats) <= north:
                free.append((dx, dy))
    out: dict[str, tuple] = {TEMPLATE: (0.0, 0.0)}
    for code in sorted((c for c in codes if c != TEMPLATE), key=lambda c: -PROVINCES[c][4]):
        x, y = _offset(code)
        best = min(free, key=lambda slot: (slot[0] - x) ** 2 + (slot[1] - y) ** 2)
        free.remove(best)
        out[code] = best
    return out


def _moved(geometry: np.ndarray, offset: tuple) -> np.ndarray:
    if offset == (0.0, 0.0):
        return geometry
    return shapely.transform(geometry, lambda xy: xy + np.array(offset))


def commune_codes(template: pd.Series, code: str) -> dict[str, str]:
    """Template commune code → the province's (Quảng Ninh keeps its own)."""
    return {
        c: (c if code == TEMPLATE else f"{code}{900 + i:03d}")
        for i, c in enumerate(sorted(template))
    }


def generate_nation(
    out: Path,
    *,
    provinces: int = 34,
    parcels: int = 1_000_000,
    seed: int = 2025,
    fixed: dict[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a nation's communes, parcels (one file per province) and zoning; returns the
    manifest (also written as ``manifest.json``). ``fixed``: parcels of some provinces."""
    say = progress or (lambda _msg: None)
    counts = parcels_per_province(provinces, parcels, fixed)
    out = Path(out)
    for sub in ("admin", "land"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for stale in (out / "land").glob("parcels_*.gpkg"):
        stale.unlink()
    communes = load_communes()
    templates: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def template_for(size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Quảng Ninh's parcels and zoning with at least ``size`` parcels (made once)."""
        if size not in templates:
            scale = size / (PARCELS_PER_CITY_AT_SCALE_1 * len(CITIES)) * 1.05
            say(f"template: Quảng Ninh at scale {scale:.2f}")
            tables, zoning = [], []
            for city in CITIES:
                made = generate_parcels(communes, city, scale=scale, seed=seed)
                tables.append(made.table.assign(geometry=made.geometry))
                zoning.append(generate_zoning(made, communes, scale=min(scale, 4.0), seed=seed))
            templates[size] = (
                pd.concat(tables, ignore_index=True),
                pd.concat(zoning, ignore_index=True),
            )
        return templates[size]

    # One template large enough for the largest province, of which the others take a
    # subset; a fixed province has its own (the same parcels whatever the nation's size).
    largest = max((n for c, n in counts.items() if c not in (fixed or {})), default=0)
    offsets = _slots(tuple(shapely.total_bounds(communes["geometry"].to_numpy())), list(counts))
    rng = np.random.default_rng(seed)
    files: dict[str, dict] = {}
    all_communes, all_zoning = [], []
    for code, wanted in counts.items():
        template, template_zoning = template_for(wanted if code in (fixed or {}) else largest)
        mapping = commune_codes(communes["commune_code"], code)
        size = min(wanted, len(template))
        rows = np.sort(rng.choice(len(template), size=size, replace=False))
        province = template.iloc[rows].copy()
        province["MAXA"] = province["MAXA"].map(mapping).fillna(province["MAXA"])
        province["geometry"] = _moved(province["geometry"].to_numpy(), offsets[code])
        rel = f"land/parcels_{code}.gpkg"
        write_gpkg(
            province,
            out / rel,
            "parcels",
            columns=PARCEL_COLUMNS,
            geometry_type="Polygon",
            epsg=CADASTRAL_EPSG,
        )
        files[rel] = {"rows": len(province), "province": code}
        say(f"parcels {code}: {len(province):,}")
        moved = communes.copy()
        moved["commune_code"] = moved["commune_code"].map(mapping)
        moved["province_code"] = code
        if code != TEMPLATE:
            moved["city"] = code + "-" + moved["city"]
        moved["geometry"] = _moved(communes["geometry"].to_numpy(), offsets[code])
        all_communes.append(moved)
        z = template_zoning.copy()
        z["ma_xa"] = z["ma_xa"].map(mapping).fillna(z["ma_xa"])
        z["ma_khu"] = code + "-" + z["ma_khu"].astype(str)
        z["geometry"] = _moved(template_zoning["geometry"].to_numpy(), offsets[code])
        all_zoning.append(z)
    admin = pd.concat(all_communes, ignore_index=True)
    admin["geometry"] = to_multi(reproject(shapely.segmentize(admin["geometry"].to_numpy(), 100.0)))
    from sdi.samples import COMMUNE_COLUMNS, ZONING_COLUMNS

    write_gpkg(
        admin,
        out / "admin/communes_2025.gpkg",
        "communes",
        columns=COMMUNE_COLUMNS,
        geometry_type="MultiPolygon",
        epsg=WGS84_EPSG,
    )
    files["admin/communes_2025.gpkg"] = {"rows": len(admin)}
    zones = pd.concat(all_zoning, ignore_index=True)
    write_gpkg(
        zones,
        out / "land/zoning_plan.gpkg",
        "quy_hoach",
        columns=ZONING_COLUMNS,
        geometry_type="MultiPolygon",
        epsg=CADASTRAL_EPSG,
    )
    files["land/zoning_plan.gpkg"] = {"rows": len(zones)}
    manifest = {
        "generator": "sdi.samples.nation",
        "seed": seed,
        "provinces": provinces,
        "parcels": int(sum(f["rows"] for k, f in files.items() if k.startswith("land/parcels_"))),
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
