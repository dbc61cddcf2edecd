"""Land data: cadastral parcels (as a land office delivers them) and the zoning plan.

Parcels are laid out per commune on a grid of blocks around the commune centroid, turned
(±45°) and bent (two gentle area-keeping shears: the streets curve, differently in each
commune). Blocks are separated by roads; inside a block, lots are laid out in rows with
random widths and depths (larger in agricultural and industrial blocks), so they never
overlap. Only lots whose four corners fall inside the commune (shrunk by a margin) are kept,
the blocks nearest the centroid first. When a commune is too small for its share of the
parcels, the whole pattern shrinks (urban densification) until the share fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from sdi.samples.common import (
    STREAM_PARCELS,
    STREAM_ZONING,
    Frame,
    allocate,
    pick,
    rng_for,
)
from sdi.samples.communes import City, city_communes
from sdi.samples.names import addresses, company_names, person_names

PARCELS_PER_CITY = 6000
COMMUNE_FLOOR_SHARE = 0.05
SHEET_SIZE = (200, 301)  # parcels per map sheet: about 250
INVALID_SHARE = 0.001
MIN_INVALID = 5

# Block grid (metres at shrink factor 1).
BLOCK_U, BLOCK_V, ROAD_W = 180.0, 100.0, 10.0
LOT_GAP = 0.4
# Street bends: wavelength (m) and steepest slope of each of the two shears of a frame.
BEND_WAVELENGTH = (900.0, 2600.0)
BEND_SLOPE = (0.03, 0.08)
RES, AGRI, IND = 0, 1, 2
# Lot widths (along the road) and depths per block class: (w_min, w_max, d_min, d_max).
LOT_DIMS = np.array(
    [
        [12.0, 30.0, 15.0, 40.0],  # residential
        [25.0, 70.0, 30.0, 50.0],  # agricultural
        [30.0, 90.0, 40.0, 50.0],  # industrial / commercial / public services
    ]
)
MAX_ROWS = int(np.ceil(BLOCK_V / LOT_DIMS[:, 2].min()))
MAX_COLS = int(np.ceil(BLOCK_U / LOT_DIMS[:, 0].min()))
# Rough ground area per lot (roads included) used to size the first layout attempt.
CELL_AREA = {RES: 950.0, AGRI: 2300.0, IND: 3500.0}
RES_LOTS_PER_BLOCK = 22.0

HOME = "HOME"  # placeholder: ODT in wards (phường), ONT in rural communes (xã)
CODE_TABLE: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    RES: (
        (
            HOME,
            "TMD",
            "CLN",
            "HNK",
            "DGD",
            "DYT",
            "TSC",
            "DKV",
            "DGT",
            "SKC",
            "DVH",
            "DTT",
            "TON",
            "NTD",
            "SON",
            "DCH",
        ),
        (78, 5, 4, 2, 1.5, 1, 1, 1.5, 2, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
    ),
    AGRI: (
        ("LUC", "HNK", "CLN", "NTS", HOME, "RSX", "SON", "DGT", "DTL", "NTD"),
        (30, 20, 20, 12, 8, 4, 3, 2, 1, 1),
    ),
    IND: (
        ("SKC", "TMD", "DGD", "DYT", "TSC", "DKV", "DNL", "DCH", "DRA", "DTT", "DVH"),
        (40, 25, 8, 4, 6, 5, 3, 3, 2, 2, 2),
    ),
}
MULTI_SHARE = 0.03
MULTI_WARD = ("ODT+TMD", "ODT+CLN")
MULTI_RURAL = ("ONT+CLN", "ONT+HNK")
SUPERSEDED_SHARE = 0.02
# Current code → the superseded code an older file carries for it.
SUPERSEDED = {
    "HNK": ("BHK", "NHK"),
    "LUC": ("LUN",),
    "DVH": ("DSH",),
    "DTT": ("DSH",),
    "DKV": ("DDL",),
    "TMD": ("DDL",),
    "TON": ("DDT",),
    "CLN": ("NHK",),
}
PUBLIC_OWNER_CODES = {
    "TSC",
    "DGD",
    "DYT",
    "DKV",
    "DGT",
    "SON",
    "DTL",
    "DNL",
    "DCH",
    "DRA",
    "DTT",
    "DVH",
    "NTD",
    "TON",
}
PARCEL_COLUMNS = ("MAXA", "SOTO", "SOTHUA", "KHLOAIDAT", "DIENTICH", "CHUSDD", "DIACHI")


@dataclass
class Layout:
    """The block grid of one commune, reused for roads, pipes and zoning."""

    commune_code: str
    frame: Frame
    shrink: float
    extent: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # lots' (u0, v0, u1, v1)

    @property
    def pitch_u(self) -> float:
        return (BLOCK_U + ROAD_W) * self.shrink

    @property
    def pitch_v(self) -> float:
        return (BLOCK_V + ROAD_W) * self.shrink


@dataclass
class Parcels:
    """Parcels of one city: attribute table, exact rectangles, and per-commune layouts.

    ``table`` columns: the DBF columns (MAXA … DIACHI, Unicode) plus city, commune_name,
    is_ward, base_code, cls, area, cx, cy, u, v, invalid. ``corners`` holds each parcel's
    valid rectangle (n, 4, 2) in EPSG:5899; ``geometry`` holds what is written (invalid ones
    are bow-ties).
    """

    city: City
    table: pd.DataFrame
    corners: np.ndarray
    geometry: np.ndarray
    layouts: dict[str, Layout] = field(default_factory=dict)

    @property
    def invalid_keys(self) -> list[dict]:
        """Natural keys of the parcels written with a self-intersecting geometry."""
        bad = self.table[self.table["invalid"]]
        return [
            {"city": self.city.slug, "MAXA": m, "SOTO": int(s), "SOTHUA": int(t)}
            for m, s, t in zip(bad["MAXA"], bad["SOTO"], bad["SOTHUA"], strict=True)
        ]


def _layout_candidates(
    rng: np.random.Generator,
    inner: shapely.Geometry,
    frame: Frame,
    shrink: float,
    radius: float,
    urban_radius: float,
    is_ward: bool,
) -> dict[str, np.ndarray]:
    """All lots of the blocks within ``radius`` that fall inside ``inner``, nearest first."""
    pu, pv = (BLOCK_U + ROAD_W) * shrink, (BLOCK_V + ROAD_W) * shrink
    ku, kv = int(np.ceil(radius / pu)), int(np.ceil(radius / pv))
    jj, ii = np.meshgrid(np.arange(-kv, kv + 1), np.arange(-ku, ku + 1), indexing="ij")
    bu, bv = ii.ravel() * pu, jj.ravel() * pv
    dist = np.hypot(bu, bv)
    keep = dist <= radius
    order = np.lexsort((bu[keep], bv[keep], dist[keep]))
    bu, bv, dist = bu[keep][order], bv[keep][order], dist[keep][order]
    nb = len(bu)

    # Block classes: residential core, agricultural fringe, some industry/services anywhere.
    rho = dist / max(urban_radius, 1.0)
    u = rng.random(nb)
    p_res = np.where(rho < 1.0, 0.86 if is_ward else 0.8, 0.15)
    p_ind = np.where(rho < 0.35, 0.04, 0.08)
    cls = np.where(u < p_res, RES, np.where(u < p_res + p_ind, IND, AGRI))
    dims = LOT_DIMS[cls] * shrink

    depth = dims[:, 2:3] + (dims[:, 3:4] - dims[:, 2:3]) * rng.random((nb, MAX_ROWS))
    row_end = np.cumsum(depth, axis=1)
    row_ok = row_end <= BLOCK_V * shrink
    width = dims[:, 0:1, None] + (dims[:, 1:2, None] - dims[:, 0:1, None]) * rng.random(
        (nb, MAX_ROWS, MAX_COLS)
    )
    col_end = np.cumsum(width, axis=2)
    ok = (col_end <= BLOCK_U * shrink) & row_ok[:, :, None]
    fill = rng.uniform(0.9, 1.0, (nb, MAX_ROWS, MAX_COLS))

    u_start = (bu - BLOCK_U * shrink / 2)[:, None, None]
    v_start = (bv - BLOCK_V * shrink / 2)[:, None]
    u0 = (u_start + col_end - width)[ok]
    u1 = (u_start + col_end)[ok] - LOT_GAP
    v0 = np.broadcast_to((v_start + row_end - depth)[:, :, None], ok.shape)[ok]
    v1 = v0 + (np.broadcast_to(depth[:, :, None], ok.shape)[ok] * fill[ok]) - LOT_GAP
    block = np.broadcast_to(np.arange(nb)[:, None, None], ok.shape)[ok]

    cu = np.stack([u0, u1, u1, u0], axis=1)
    cv = np.stack([v0, v0, v1, v1], axis=1)
    x, y = frame.to_xy(cu, cv)
    inside = shapely.contains_xy(inner, x, y).all(axis=1)
    return {
        "u0": u0[inside],
        "u1": u1[inside],
        "v0": v0[inside],
        "v1": v1[inside],
        "x": x[inside],
        "y": y[inside],
        "cls": cls[block[inside]],
    }


def _street_pattern(
    rng: np.random.Generator,
) -> tuple[float, tuple[float, float, float, float, float, float]]:
    """A commune's street orientation (radians) and bends (see :class:`Frame`)."""
    theta = float(rng.uniform(-np.pi / 4, np.pi / 4))
    lengths = rng.uniform(*BEND_WAVELENGTH, 2)
    amplitude = rng.uniform(*BEND_SLOPE, 2) * lengths / (2 * np.pi)
    phase = rng.uniform(0, 2 * np.pi, 2)
    bend = (amplitude[0], lengths[0], phase[0], amplitude[1], lengths[1], phase[1])
    a0, l0, p0, a1, l1, p1 = (float(b) for b in bend)
    return theta, (a0, l0, p0, a1, l1, p1)


def _expected_cell(is_ward: bool) -> float:
    res = 0.8 if is_ward else 0.5
    return res * CELL_AREA[RES] + (0.92 - res) * CELL_AREA[AGRI] + 0.08 * CELL_AREA[IND]


def layout_commune(
    rng: np.random.Generator, commune: pd.Series, n: int
) -> tuple[dict[str, np.ndarray], Layout]:
    """Lay out ``n`` lots in one commune; returns lot arrays (nearest first) and the layout."""
    is_ward = commune["commune_type"] != "Xã"
    inner = commune["inner"]
    frame = Frame(float(commune["x"]), float(commune["y"]), *_street_pattern(rng))
    far = float(shapely.hausdorff_distance(shapely.points(frame.cx, frame.cy), commune["geometry"]))
    avail = shapely.area(inner)
    cell = _expected_cell(is_ward)
    shrink = float(min(1.0, np.sqrt(0.75 * avail / (n * cell))))
    radius = None
    for _ in range(40):
        need = n * cell * shrink**2
        if radius is None:
            radius = min(far + 200 * shrink, 1.3 * np.sqrt(need / np.pi) + 300 * shrink)
        n_res = (0.8 if is_ward else 0.5) * n
        urban = (
            np.sqrt(n_res / RES_LOTS_PER_BLOCK * (BLOCK_U + ROAD_W) * (BLOCK_V + ROAD_W) / np.pi)
            * shrink
        )
        lots = _layout_candidates(rng, inner, frame, shrink, radius, urban, is_ward)
        got = len(lots["u0"])
        if got >= n:
            break
        if radius < far:
            radius = min(far + 200 * shrink, radius * 1.5)
        else:  # the commune is full: shrink the pattern and start again from the centre
            shrink *= max(0.5, min(0.95, np.sqrt(got / n) * 0.97))
            radius = None
    else:  # pragma: no cover - only with absurd scales
        raise RuntimeError(f"cannot place {n} parcels in commune {commune['commune_code']}")
    lots = {k: v[:n] for k, v in lots.items()}
    layout = Layout(
        str(commune["commune_code"]),
        frame,
        shrink,
        (
            float(lots["u0"].min()),
            float(lots["v0"].min()),
            float(lots["u1"].max()),
            float(lots["v1"].max()),
        ),
    )
    return lots, layout


def _allocate_parcels(communes: pd.DataFrame, total: int) -> np.ndarray:
    """Parcels per commune: proportional to the official area, at least 5 % each."""
    area = communes["area_km2"].to_numpy(dtype=float)
    floor = min(COMMUNE_FLOOR_SHARE, 1.0 / len(area))
    fixed = np.zeros(len(area), dtype=bool)
    while True:
        share = np.where(fixed, floor, area / area[~fixed].sum() * (1 - floor * fixed.sum()))
        below = ~fixed & (share < floor)
        if not below.any():
            return allocate(total, share)
        fixed |= below


def _land_use(rng: np.random.Generator, cls: np.ndarray, is_ward: bool) -> np.ndarray:
    codes = np.empty(len(cls), dtype=object)
    for c, (values, probs) in CODE_TABLE.items():
        sel = cls == c
        codes[sel] = pick(rng, values, probs, int(sel.sum()))
    codes[codes == HOME] = "ODT" if is_ward else "ONT"
    return codes


def _mark_legacy_codes(rng: np.random.Generator, codes: np.ndarray, is_ward: np.ndarray) -> None:
    """Turn ~3 % of parcels multi-purpose and ~2 % to superseded codes, in place."""
    n = len(codes)
    home = np.flatnonzero(np.isin(codes, ["ODT", "ONT"]))
    k = min(len(home), round(MULTI_SHARE * n))
    chosen = rng.choice(home, size=k, replace=False) if k else home[:0]
    variant = rng.integers(0, 2, size=k)
    codes[chosen] = np.where(
        is_ward[chosen],
        np.array(MULTI_WARD, dtype=object)[variant],
        np.array(MULTI_RURAL, dtype=object)[variant],
    )
    eligible = np.flatnonzero(np.isin(codes, list(SUPERSEDED)))
    k = min(len(eligible), round(SUPERSEDED_SHARE * n))
    chosen = np.sort(rng.choice(eligible, size=k, replace=False)) if k else eligible[:0]
    for code, olds in SUPERSEDED.items():
        sel = chosen[codes[chosen] == code]
        codes[sel] = np.array(olds, dtype=object)[rng.integers(0, len(olds), len(sel))]


def base_code(codes: pd.Series | np.ndarray) -> np.ndarray:
    """First code of a (possibly multi-purpose) land-use value: 'ODT+TMD' → 'ODT'."""
    return pd.Series(np.asarray(codes, dtype=object)).str.split("+").str[0].to_numpy(dtype=object)


def generate_parcels(
    communes: pd.DataFrame,
    city: City,
    *,
    scale: float,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> Parcels:
    """Generate the parcels of one city (``PARCELS_PER_CITY × scale``)."""
    members = city_communes(communes, city)
    total = max(len(members) * 20, round(PARCELS_PER_CITY * scale))
    counts = _allocate_parcels(members, total)
    tables, corners, layouts = [], [], {}
    for (_, commune), n in zip(members.iterrows(), counts, strict=True):
        code = str(commune["commune_code"])
        rng = rng_for(seed, STREAM_PARCELS, int(code))
        lots, layout = layout_commune(rng, commune, int(n))
        layouts[code] = layout
        is_ward = commune["commune_type"] != "Xã"
        codes = _land_use(rng, lots["cls"], is_ward)
        sheet_sizes = rng.integers(*SHEET_SIZE, size=int(n) // SHEET_SIZE[0] + 2)
        sheet_end = np.cumsum(sheet_sizes)
        idx = np.arange(n)
        soto = np.searchsorted(sheet_end, idx, side="right")
        sothua = idx - np.concatenate([[0], sheet_end])[soto] + 1
        area = (lots["u1"] - lots["u0"]) * (lots["v1"] - lots["v0"])
        tables.append(
            pd.DataFrame(
                {
                    "MAXA": code,
                    "SOTO": (soto + 1).astype(np.int32),
                    "SOTHUA": sothua.astype(np.int32),
                    "KHLOAIDAT": codes,
                    "area": area,
                    "cls": lots["cls"].astype(np.int8),
                    "commune_name": commune["commune_name"],
                    "is_ward": is_ward,
                    "u": (lots["u0"] + lots["u1"]) / 2,
                    "v": (lots["v0"] + lots["v1"]) / 2,
                    "cx": lots["x"].mean(axis=1),
                    "cy": lots["y"].mean(axis=1),
                }
            )
        )
        corners.append(np.stack([lots["x"], lots["y"]], axis=2))
    table = pd.concat(tables, ignore_index=True)
    corner_arr = np.concatenate(corners)
    n = len(table)

    rng = rng_for(seed, STREAM_PARCELS, city.index, 0)
    is_ward = table["is_ward"].to_numpy()
    codes = table["KHLOAIDAT"].to_numpy(dtype=object).copy()
    _mark_legacy_codes(rng, codes, is_ward)
    table["KHLOAIDAT"] = codes
    table["base_code"] = base_code(codes)
    table["DIENTICH"] = np.round(table["area"].to_numpy() * (1 + rng.normal(0, 0.006, n)), 1)

    owners = person_names(rng, n)
    base = table["base_code"].to_numpy(dtype=object)
    public = np.isin(base, list(PUBLIC_OWNER_CODES))
    owners[public] = "UBND " + table["commune_name"].to_numpy(dtype=object)[public]
    business = np.isin(base, ["SKC", "TMD"]) & (rng.random(n) < 0.5)
    owners[business] = company_names(rng, int(business.sum()))
    table["CHUSDD"] = owners
    table["DIACHI"] = addresses(rng, table["commune_name"].to_numpy(dtype=object), is_ward)
    table.insert(0, "city", city.slug)

    # Invalid geometries: self-intersecting bow-ties (two vertices swapped).
    k = max(MIN_INVALID, round(n * INVALID_SHARE))
    invalid = np.zeros(n, dtype=bool)
    invalid[rng.choice(n, size=k, replace=False)] = True
    table["invalid"] = invalid
    rings = corner_arr[:, [0, 1, 2, 3, 0], :].copy()
    rings[invalid] = corner_arr[invalid][:, [0, 2, 1, 3, 0], :]
    geometry = shapely.polygons(rings)
    return Parcels(city, table, corner_arr, geometry, layouts)


# --- zoning plan --------------------------------------------------------------------------

ZONES_PER_CITY = 60
ZONE_SIZE = (300.0, 800.0)
PLAN_YEAR = {"ha_long": 2040, "uong_bi": 2040, "cam_pha": 2040, "mong_cai": 2045}
ZONE_FUNCTIONS: dict[int, tuple[tuple[str, ...], tuple[float, ...]]] = {
    RES: ((HOME, "TMD", "DGD", "DKV", "DYT"), (70, 14, 6, 8, 2)),
    AGRI: ((HOME, "CLN", "DKV", "HNK", "SKC"), (35, 25, 20, 15, 5)),
    IND: (("SKC", "TMD", "DGD"), (60, 35, 5)),
}
ZONE_LABEL = {
    "ODT": "Khu dân cư đô thị",
    "ONT": "Khu dân cư nông thôn",
    "TMD": "Khu thương mại dịch vụ",
    "DGD": "Khu trường học",
    "DKV": "Khu cây xanh công viên",
    "DYT": "Khu y tế",
    "CLN": "Khu cây lâu năm",
    "HNK": "Khu nông nghiệp",
    "SKC": "Cụm công nghiệp",
}
# (FAR min, FAR max, floors min, floors max) per planned function.
ZONE_LIMITS = {
    "ODT": (1.5, 4.0, 3, 9),
    "ONT": (0.8, 2.0, 2, 4),
    "TMD": (2.5, 8.0, 5, 25),
    "DGD": (0.6, 1.5, 2, 5),
    "DKV": (0.05, 0.2, 1, 1),
    "DYT": (1.0, 2.5, 3, 7),
    "CLN": (0.05, 0.1, 1, 1),
    "HNK": (0.05, 0.1, 1, 1),
    "SKC": (0.6, 1.2, 1, 3),
}


def _breaks(rng: np.random.Generator, lo: float, hi: float, size: float) -> np.ndarray:
    widths = rng.uniform(0.75 * size, 1.25 * size, int((hi - lo) / (0.75 * size)) + 2)
    ends = lo + np.cumsum(widths)
    return np.concatenate([[lo], ends[: np.searchsorted(ends, hi) + 1]])


def generate_zoning(
    parcels: Parcels, communes: pd.DataFrame, *, scale: float, seed: int
) -> pd.DataFrame:
    """Zoning blocks (~60 per city at scale 1, at most 4×) covering the city's parcels.

    Returns a DataFrame with the layer's columns and an EPSG:5899 ``geometry`` column.
    """
    city = parcels.city
    table = parcels.table
    target = max(8, round(ZONES_PER_CITY * min(scale, 4.0)))
    extents = {
        code: (lay.extent[2] - lay.extent[0]) * (lay.extent[3] - lay.extent[1])
        for code, lay in parcels.layouts.items()
    }
    # Blocks are 300-800 m; beyond scale 4 they grow so that the zone count stops growing.
    bounds = (ZONE_SIZE[0], ZONE_SIZE[1] * np.sqrt(max(1.0, scale / 4.0)))
    size = float(np.clip(np.sqrt(sum(extents.values()) / target), *bounds))
    geoms = communes.set_index("commune_code")["geometry"]
    rows: list[tuple] = []
    for attempt in range(6):
        rows = []
        for code, lay in parcels.layouts.items():
            rng = rng_for(seed, STREAM_ZONING, int(code), attempt)
            sel = (table["MAXA"] == code).to_numpy()
            ub = _breaks(rng, lay.extent[0], lay.extent[2], size)
            vb = _breaks(rng, lay.extent[1], lay.extent[3], size)
            # A tile is kept when a parcel corner falls in it, so the zones cover every parcel.
            cu, cv = lay.frame.to_uv(parcels.corners[sel, :, 0], parcels.corners[sel, :, 1])
            iu = np.clip(np.searchsorted(ub, cu, side="right") - 1, 0, len(ub) - 2)
            iv = np.clip(np.searchsorted(vb, cv, side="right") - 1, 0, len(vb) - 2)
            tile = (iv * (len(ub) - 1) + iu).ravel()
            cls = np.repeat(table.loc[sel, "cls"].to_numpy(), 4)
            counts = np.zeros(((len(ub) - 1) * (len(vb) - 1), 3), dtype=np.int64)
            np.add.at(counts, (tile, cls), 1)
            used = np.flatnonzero(counts.sum(axis=1))
            tu, tv = used % (len(ub) - 1), used // (len(ub) - 1)
            rows.append((code, lay, ub, vb, tu, tv, counts[used].argmax(axis=1), rng))
        n_zones = sum(len(r[4]) for r in rows)
        if abs(n_zones - target) <= 0.15 * target or size in bounds:
            break
        size = float(np.clip(size * np.sqrt(n_zones / target), *bounds))

    plan_rng = rng_for(seed, STREAM_ZONING, city.index, 99)
    plan_id = f"QH-{city.abbr}-{PLAN_YEAR[city.slug]}"
    approved = np.datetime64("2019-01-01") + np.timedelta64(int(plan_rng.integers(0, 5 * 365)), "D")
    frames = []
    for code, lay, ub, vb, tu, tv, cls, rng in rows:
        commune = communes[communes["commune_code"] == code].iloc[0]
        is_ward = commune["commune_type"] != "Xã"
        func = np.empty(len(tu), dtype=object)
        for c, (values, probs) in ZONE_FUNCTIONS.items():
            s = cls == c
            func[s] = pick(rng, values, probs, int(s.sum()))
        func[func == HOME] = "ODT" if is_ward else "ONT"
        cu = np.stack([ub[tu], ub[tu + 1], ub[tu + 1], ub[tu], ub[tu]], axis=1)
        cv = np.stack([vb[tv], vb[tv], vb[tv + 1], vb[tv + 1], vb[tv]], axis=1)
        # Tiles follow the bent streets: their edges are densified before bending.
        rect = shapely.segmentize(shapely.polygons(np.stack([cu, cv], axis=2)), 25.0)
        rect = shapely.transform(rect, lambda uv, f=lay.frame: np.column_stack(f.to_xy(*uv.T)))
        geom = shapely.intersection(rect, geoms[code])
        limits = np.array([ZONE_LIMITS[f] for f in func]).reshape(-1, 4)
        far = np.round(rng.uniform(limits[:, 0], limits[:, 1]), 2)
        floors = rng.integers(limits[:, 2].astype(int), limits[:, 3].astype(int) + 1)
        seq = np.arange(1, len(tu) + 1)
        ordinal = pd.Series(func).groupby(func).cumcount().to_numpy() + 1
        frames.append(
            pd.DataFrame(
                {
                    "ma_khu": [f"QH-{code}-{i:03d}" for i in seq],
                    "ten_khu": [
                        f"{ZONE_LABEL[f]} số {o} - {commune['commune_name']}"
                        for f, o in zip(func, ordinal, strict=True)
                    ],
                    "chuc_nang": func,
                    "hs_sdd": far,
                    "tang_cao": floors.astype(np.int32),
                    "ma_quy_hoach": plan_id,
                    "ngay_duyet": str(approved),
                    "ma_xa": code,
                    "geometry": to_multi(geom),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "city", city.slug)
    return out


def to_multi(geom: np.ndarray) -> np.ndarray:
    """Polygon array → MultiPolygon array (one part each; MultiPolygons are kept as they are)."""
    parts, index = shapely.get_parts(np.asarray(geom), return_index=True)
    return shapely.multipolygons(parts, indices=index)
