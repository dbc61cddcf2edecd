"""Construction data: building footprints and the building-permit register.

Buildings are rectangles inset inside parcels (about 55 % of residential and commercial
parcels, most school, health and office parcels, some industrial ones). Permits are the
construction department's Excel export: about 80 % of buildings have one (so ~20 % have none),
and about 10 % of all permits point at parcels where nothing was built (stalled projects).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from sdi.samples.common import (
    REFERENCE_DATE,
    REFERENCE_YEAR,
    STREAM_BUILDINGS,
    STREAM_PERMITS,
    STREAM_SURVEY,
    dates_to_vn,
    rng_for,
)
from sdi.samples.land import Parcels
from sdi.samples.names import TRADE_NAMES, company_names, person_names, short_name

# Probability that a parcel with this (first) land-use code carries a building.
BUILT_SHARE = {
    "ODT": 0.55,
    "ONT": 0.55,
    "TMD": 0.55,
    "DGD": 0.9,
    "DYT": 0.9,
    "TSC": 0.9,
    "SKC": 0.4,
    "DVH": 0.8,
    "DTT": 0.8,
}
USE_TYPES = ("residential", "commercial", "public", "industrial", "education", "health", "office")
PERMIT_SHARE = 0.8
OLD_PERMIT_SHARE = 0.0
DIGITAL_REGISTER_SINCE = 1995
STALLED_SHARE = 0.1  # of all permits
PERMIT_STATUS = ("issued", "under_construction", "completed", "expired")
PERMIT_COLUMNS = (
    "so_gp",
    "ngay_cap",
    "chu_dau_tu",
    "dia_chi",
    "ma_xa",
    "so_tang",
    "dt_san",
    "trang_thai",
    "X",
    "Y",
)
SCHOOL_LEVELS = ("Trường Mầm non", "Trường Tiểu học", "Trường THCS", "Trường THPT")
OFFICES = ("UBND", "Công an", "Trung tâm Hành chính công", "Kho bạc Nhà nước", "Chi cục Thuế")
SHOPS = ("Khách sạn", "Siêu thị", "Nhà hàng", "Trung tâm thương mại", "Nhà nghỉ")


def _use_types(rng: np.random.Generator, base: np.ndarray) -> np.ndarray:
    use = np.full(len(base), "residential", dtype=object)
    n = len(base)
    use[np.isin(base, ["ODT", "ONT"]) & (rng.random(n) < 0.08)] = "commercial"
    tmd = base == "TMD"
    use[tmd] = np.where(rng.random(int(tmd.sum())) < 0.75, "commercial", "office")
    use[base == "DGD"] = "education"
    use[base == "DYT"] = "health"
    use[base == "TSC"] = "office"
    use[base == "SKC"] = "industrial"
    use[np.isin(base, ["DVH", "DTT"])] = "public"
    return use


def _floors(rng: np.random.Generator, use: np.ndarray, is_ward: np.ndarray) -> np.ndarray:
    n = len(use)
    floors = np.ones(n, dtype=np.int32)
    res = use == "residential"
    ward_f = rng.choice(np.arange(1, 8), n, p=[0.08, 0.2, 0.25, 0.22, 0.15, 0.07, 0.03])
    rural_f = rng.choice([1, 2, 3], n, p=[0.45, 0.4, 0.15])
    floors[res] = np.where(is_ward, ward_f, rural_f)[res]
    tall = rng.random(n) < 0.05
    com = use == "commercial"
    floors[com] = np.where(tall, rng.integers(15, 31, n), rng.integers(2, 13, n))[com]
    for kind, lo, hi in (
        ("education", 2, 4),
        ("health", 2, 7),
        ("office", 3, 9),
        ("industrial", 1, 2),
        ("public", 1, 3),
    ):
        s = use == kind
        floors[s] = rng.integers(lo, hi + 1, int(s.sum()))
    return floors


def _building_names(
    rng: np.random.Generator, use: np.ndarray, commune_names: np.ndarray
) -> np.ndarray:
    n = len(use)
    short = np.array([short_name(c) for c in commune_names], dtype=object)
    names = np.full(n, None, dtype=object)
    trade = np.array(TRADE_NAMES, dtype=object)[rng.integers(0, len(TRADE_NAMES), n)]
    num = rng.integers(1, 10, n).astype(str).astype(object)
    school = np.array(SCHOOL_LEVELS, dtype=object)[rng.integers(0, len(SCHOOL_LEVELS), n)]
    office = np.array(OFFICES, dtype=object)[rng.integers(0, len(OFFICES), n)]
    shop = np.array(SHOPS, dtype=object)[rng.integers(0, len(SHOPS), n)]
    edu = use == "education"
    names[edu] = (school + " " + short)[edu]
    health = use == "health"
    names[health] = np.where(
        rng.random(n) < 0.6, "Trạm Y tế " + short, "Phòng khám Đa khoa khu vực " + num
    )[health]
    off = use == "office"
    names[off] = (office + " " + short)[off]
    pub = use == "public"
    names[pub] = np.where(rng.random(n) < 0.5, "Nhà văn hóa khu " + num, "Nhà thi đấu " + short)[
        pub
    ]
    com = (use == "commercial") & (rng.random(n) < 0.35)
    names[com] = (shop + " " + trade)[com]
    ind = (use == "industrial") & (rng.random(n) < 0.5)
    names[ind] = ("Nhà máy " + trade)[ind]
    return names


def generate_buildings(parcels: Parcels, *, seed: int) -> pd.DataFrame:
    """Buildings of one city: the layer's columns, EPSG:5899 ``geometry`` and ``parcel``."""
    table = parcels.table
    city = parcels.city
    rng = rng_for(seed, STREAM_BUILDINGS, city.index)
    base = table["base_code"].to_numpy(dtype=object)
    share = pd.Series(base).map(BUILT_SHARE).fillna(0.0).to_numpy()
    built = (rng.random(len(base)) < share) & ~table["invalid"].to_numpy()
    idx = np.flatnonzero(built)
    n = len(idx)
    b = base[idx]
    use = _use_types(rng, b)
    big = np.isin(use, ["education", "health", "industrial", "public"])
    a0 = np.where(big, rng.uniform(0.1, 0.2, n), rng.uniform(0.04, 0.12, n))
    a1 = np.where(big, rng.uniform(0.75, 0.9, n), rng.uniform(0.88, 0.97, n))
    b0 = rng.uniform(0.05, 0.25, n)
    b1 = np.minimum(b0 + np.where(big, rng.uniform(0.35, 0.55, n), rng.uniform(0.45, 0.7, n)), 0.95)
    c = parcels.corners[idx]
    p0, du, dv = c[:, 0, :], c[:, 1, :] - c[:, 0, :], c[:, 3, :] - c[:, 0, :]
    fu = np.stack([a0, a1, a1, a0, a0], axis=1)[:, :, None]
    fv = np.stack([b0, b0, b1, b1, b0], axis=1)[:, :, None]
    rings = p0[:, None, :] + fu * du[:, None, :] + fv * dv[:, None, :]
    geometry = shapely.polygons(rings)

    is_ward = table["is_ward"].to_numpy()[idx]
    floors = _floors(rng, use, is_ward)
    height = np.round(floors * rng.uniform(3.3, 3.8, n) + rng.uniform(0.3, 1.2, n), 1)
    year = 1975 + np.floor(51 * rng.beta(2.2, 1.2, n)).astype(np.int32)
    year = np.minimum(year, REFERENCE_YEAR)
    codes = table["MAXA"].to_numpy(dtype=object)[idx]
    seq = pd.Series(codes).groupby(codes).cumcount().to_numpy() + 1
    ids = [f"B-{m}-{s:06d}" for m, s in zip(codes, seq, strict=True)]
    return pd.DataFrame(
        {
            "building_id": ids,
            "commune_code": codes,
            "floors": floors,
            "height_m": height,
            "use_type": use,
            "year_built": year.astype(np.int32),
            "name": _building_names(rng, use, table["commune_name"].to_numpy(dtype=object)[idx]),
            "city": city.slug,
            "parcel": idx,
            "footprint_m2": shapely.area(geometry),
            "geometry": geometry,
        }
    )


def generate_permits(parcels: Parcels, buildings: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Building permits of one city as the construction department exports them."""
    table = parcels.table
    city = parcels.city
    rng = rng_for(seed, STREAM_PERMITS, city.index)

    # Permits before the register was digitised (1995) are mostly missing.
    old = buildings["year_built"].to_numpy() < DIGITAL_REGISTER_SINCE
    p_new = (PERMIT_SHARE * len(old) - OLD_PERMIT_SHARE * old.sum()) / max(1, (~old).sum())
    p = np.where(old, OLD_PERMIT_SHARE, min(p_new, 0.97))
    with_permit = np.flatnonzero(rng.random(len(buildings)) < p)
    bp = buildings.iloc[with_permit]
    nb = len(bp)
    built_on = np.asarray(
        pd.Series(bp["year_built"].to_numpy()).astype(str) + "-01-01", dtype="datetime64[D]"
    )
    issue_b = built_on + rng.integers(0, 365, nb) - rng.integers(120, 540, nb)
    issue_b = np.minimum(issue_b, REFERENCE_DATE - np.timedelta64(5, "D"))
    status_b = np.where(
        bp["year_built"].to_numpy() >= REFERENCE_YEAR, "under_construction", "completed"
    ).astype(object)
    centroid = shapely.centroid(bp["geometry"].to_numpy())
    bx, by = shapely.get_x(centroid), shapely.get_y(centroid)
    floor_area_b = np.round(
        bp["footprint_m2"].to_numpy() * bp["floors"].to_numpy() * rng.uniform(0.9, 1.0, nb), 1
    )

    # Stalled projects: permits on parcels where nothing stands.
    ns = round(STALLED_SHARE / (1 - STALLED_SHARE) * nb)
    base = table["base_code"].to_numpy(dtype=object)
    empty = np.ones(len(table), dtype=bool)
    empty[buildings["parcel"].to_numpy()] = False
    candidates = np.flatnonzero(
        empty & np.isin(base, ["ODT", "ONT", "TMD"]) & ~table["invalid"].to_numpy()
    )
    stalled = np.sort(rng.choice(candidates, size=min(ns, len(candidates)), replace=False))
    ns = len(stalled)
    issue_s = np.datetime64("2019-01-01") + rng.integers(
        0, (REFERENCE_DATE - np.datetime64("2019-01-01")).astype(int) - 14, ns
    )
    status_s = np.where(
        issue_s >= REFERENCE_DATE - np.timedelta64(365, "D"), "issued", "expired"
    ).astype(object)
    floors_s = rng.integers(2, 8, ns)
    floor_area_s = np.round(
        table["area"].to_numpy()[stalled] * rng.uniform(0.5, 0.8, ns) * floors_s, 1
    )

    parcel = np.concatenate([bp["parcel"].to_numpy(), stalled])
    use = np.concatenate(
        [
            bp["use_type"].to_numpy(dtype=object),
            np.where(base[stalled] == "TMD", "commercial", "residential"),
        ]
    )
    n = len(parcel)
    applicant = person_names(rng, n)
    company = np.isin(use, ["commercial", "industrial"]) & (rng.random(n) < 0.7)
    applicant[company] = company_names(rng, int(company.sum()))
    public = np.isin(use, ["education", "health", "office", "public"])
    applicant[public] = f"Ban Quản lý dự án Đầu tư xây dựng thành phố {city.name}"
    issued = np.concatenate([issue_b, issue_s])
    df = pd.DataFrame(
        {
            "issued": issued,
            "chu_dau_tu": applicant,
            "dia_chi": table["DIACHI"].to_numpy(dtype=object)[parcel],
            "ma_xa": table["MAXA"].to_numpy(dtype=object)[parcel],
            "so_tang": np.concatenate([bp["floors"].to_numpy(), floors_s]).astype(np.int32),
            "dt_san": np.concatenate([floor_area_b, floor_area_s]),
            "trang_thai": np.concatenate([status_b, status_s]),
            "northing": np.concatenate([by, table["cy"].to_numpy()[stalled]]),
            "easting": np.concatenate([bx, table["cx"].to_numpy()[stalled]]),
            "building_id": np.concatenate(
                [bp["building_id"].to_numpy(dtype=object), np.full(ns, None, dtype=object)]
            ),
        }
    )
    df = df.sort_values(["issued", "ma_xa", "dia_chi"], kind="stable").reset_index(drop=True)
    year = df["issued"].dt.year.to_numpy()
    seq = pd.Series(year).groupby(year).cumcount().to_numpy() + 1
    df.insert(0, "so_gp", [f"GP-{y}-{city.abbr}-{s:05d}" for y, s in zip(year, seq, strict=True)])
    df.insert(1, "ngay_cap", dates_to_vn(df["issued"].to_numpy()))
    df["X"] = np.char.mod("%.3f", df["northing"].to_numpy())
    df["Y"] = np.char.mod("%.3f", df["easting"].to_numpy())
    df["city"] = city.slug
    return df.drop(columns=["issued", "northing", "easting"])


SURVEY_COLUMNS = ("ma_cong_trinh", "ma_xa", "so_tang", "chieu_cao_m", "ngay_do")


def survey_buildings(buildings: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """The survey office's measurements of about 60 % of the buildings (EPSG:5899).

    Footprints are measured (slightly larger than the permitted ones), heights measured, and
    about 5 % of the surveyed buildings have one floor more than permitted — the values the
    merge rule must keep even where the construction department's value wins.
    """
    rng = rng_for(seed, STREAM_SURVEY)
    pick = np.flatnonzero(rng.random(len(buildings)) < 0.6)
    chosen = buildings.iloc[pick]
    geometry = chosen["geometry"].to_numpy()
    centre = shapely.get_coordinates(shapely.centroid(geometry))
    scale = rng.uniform(1.01, 1.04, len(pick))
    rings = shapely.get_coordinates(shapely.get_exterior_ring(geometry)).reshape(len(pick), -1, 2)
    rings = centre[:, None, :] + (rings - centre[:, None, :]) * scale[:, None, None]
    extra_floor = rng.random(len(pick)) < 0.05
    days = rng.integers(0, 365, len(pick))
    surveyed = np.datetime64("2024-06-01") + days.astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "ma_cong_trinh": chosen["building_id"].to_numpy(),
            "ma_xa": chosen["commune_code"].to_numpy(),
            "so_tang": chosen["floors"].to_numpy() + extra_floor,
            "chieu_cao_m": np.round(
                chosen["height_m"].to_numpy() + rng.normal(0, 0.4, len(pick)), 1
            ),
            "ngay_do": pd.Series(surveyed).dt.strftime("%Y-%m-%d").to_numpy(),
            "city": chosen["city"].to_numpy(),
            "geometry": shapely.polygons(rings),
        }
    )
