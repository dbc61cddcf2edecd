"""Urban infrastructure: street lamps on synthetic roads, wifi hotspots, cameras, water
pipes and environmental sensors (the IOC's device inventories).

Roads and pipes follow each commune's block grid (the spaces between parcel blocks, bent
like the streets), so the devices sit where the streets of the sample parcels are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from sdi.samples.common import (
    REFERENCE_DATE,
    REFERENCE_YEAR,
    STREAM_CAMERAS,
    STREAM_LAMPS,
    STREAM_PIPES,
    STREAM_SENSORS,
    STREAM_WIFI,
    allocate,
    pick,
    rng_for,
)
from sdi.samples.communes import City
from sdi.samples.land import Layout, Parcels
from sdi.samples.names import short_name, street_names

LAMPS = {"ha_long": 4300, "uong_bi": 1100, "cam_pha": 1600, "mong_cai": 900}
ROADS_HA_LONG = 145
LAMP_SPACING = 30.0
MIN_LAMPS_PER_ROAD = 8
LAMPS_PER_CABINET = 40
WIFI = {"ha_long": 107, "uong_bi": 30, "cam_pha": 40, "mong_cai": 35}
WIFI_SSID = {"ha_long": "HaLong", "uong_bi": "UongBi", "cam_pha": "CamPha", "mong_cai": "MongCai"}
CAMERAS = {"ha_long": 1300, "uong_bi": 180, "cam_pha": 250, "mong_cai": 80}
MONG_CAI_BORDER_CAMERAS = 20
SECTOR_GRID = {"ha_long": (3, 3), "uong_bi": (3, 1), "cam_pha": (2, 2), "mong_cai": (3, 1)}
PIPES_PER_CITY = 500
SENSORS_PER_CITY = 12
GRID_REACH_M = 3500.0


def lamp_count(city: City) -> int:
    """Street lamps of a city (not scaled)."""
    return LAMPS[city.slug]


def road_count(city: City) -> int:
    """Roads carrying the city's lamps: 145 in Hạ Long, proportionally fewer elsewhere."""
    return round(ROADS_HA_LONG * LAMPS[city.slug] / LAMPS["ha_long"])


@dataclass
class Roads:
    """Synthetic lit roads of a city and the lamp positions on them."""

    table: pd.DataFrame  # road_id, road_name, commune_code, n_lamps, geometry (EPSG:5899)
    lamps: pd.DataFrame  # road index, commune_code, x, y


def _grid_lines(layout: Layout, inner: shapely.Geometry, offset: float = 0.0) -> pd.DataFrame:
    """Chords of the commune's grid streets inside ``inner``, central streets first.

    Columns: axis (0: along u at constant v, 1: along v at constant u), pos (the constant
    coordinate), rank (0 for the streets through the centre), t0, t1 (chord in the running
    coordinate), lo, hi (the parcels' extent in the running coordinate).
    """
    frame = layout.frame
    # Streets reach GRID_REACH_M from the centre at most (not the commune's far islands).
    far = float(shapely.hausdorff_distance(shapely.points(frame.cx, frame.cy), inner)) + 100
    far = min(far, GRID_REACH_M)
    box = (frame.cx - 1.5 * far, frame.cy - 1.5 * far, frame.cx + 1.5 * far, frame.cy + 1.5 * far)
    inner = shapely.clip_by_rect(inner, *box)
    rows = []
    for axis, pitch in ((0, layout.pitch_v), (1, layout.pitch_u)):
        k = int(far / pitch) + 1
        j = np.arange(-k, k)
        pos = (j + 0.5) * pitch + offset
        rank = np.minimum(np.abs(j), np.abs(j + 1))
        rows.append(pd.DataFrame({"axis": axis, "pos": pos, "rank": rank}))
    lines = pd.concat(rows, ignore_index=True)
    run = np.linspace(-far, far, int(2 * far / 150.0) + 2)  # bent streets: 150 m vertices
    a = lines["axis"].to_numpy()
    p = lines["pos"].to_numpy()
    u = np.where(a[:, None] == 0, run[None, :], p[:, None])
    v = np.where(a[:, None] == 0, p[:, None], run[None, :])
    x, y = frame.to_xy(u, v)
    chords = shapely.intersection(shapely.linestrings(np.stack([x, y], axis=2)), inner)
    ok = ~shapely.is_empty(chords) & (shapely.get_type_id(chords) == 1)
    lines, chords = lines[ok].reset_index(drop=True), chords[ok]
    ends = [shapely.get_point(chords, 0), shapely.get_point(chords, -1)]
    coords = np.stack([shapely.get_coordinates(e) for e in ends], axis=1)
    cu, cv = frame.to_uv(coords[:, :, 0], coords[:, :, 1])
    t = np.where(lines["axis"].to_numpy()[:, None] == 0, cu, cv)
    lines["t0"], lines["t1"] = t.min(axis=1), t.max(axis=1)
    e = layout.extent
    lines["lo"] = np.where(lines["axis"] == 0, e[0], e[1])
    lines["hi"] = np.where(lines["axis"] == 0, e[2], e[3])
    order = np.lexsort((lines["pos"].abs(), lines["axis"], lines["rank"]))
    return lines.iloc[order].reset_index(drop=True)


def _to_xy(layout: Layout, axis: np.ndarray, pos: np.ndarray, t: np.ndarray):
    u = np.where(axis == 0, t, pos)
    v = np.where(axis == 0, pos, t)
    return layout.frame.to_xy(u, v)


def generate_roads(parcels: Parcels, communes: pd.DataFrame, *, seed: int) -> Roads:
    """Place the city's lit roads on its communes' grid streets, lamps every ~30 m."""
    city = parcels.city
    rng = rng_for(seed, STREAM_LAMPS, city.index)
    n_roads, n_lamps = road_count(city), lamp_count(city)
    per_road = MIN_LAMPS_PER_ROAD + rng.multinomial(
        n_lamps - MIN_LAMPS_PER_ROAD * n_roads, rng.dirichlet(np.full(n_roads, 2.0))
    )
    codes = list(parcels.layouts)
    weights = parcels.table["MAXA"].value_counts().reindex(codes).to_numpy(dtype=float)
    road_commune = np.repeat(np.arange(len(codes)), allocate(n_roads, weights, minimum=1))
    inner = communes.set_index("commune_code")["inner"]
    lines = {c: _grid_lines(parcels.layouts[c], inner[c]) for c in codes}
    cursor = {
        c: np.maximum(ln["t0"].to_numpy(), ln["lo"].to_numpy() - 60) for c, ln in lines.items()
    }
    placed = []
    for i, (home, k) in enumerate(zip(road_commune, per_road, strict=True)):
        length = LAMP_SPACING * k
        for ci in [int(home), *[j for j in range(len(codes)) if j != home]]:
            c = codes[ci]
            ln = lines[c]
            free = ln["t1"].to_numpy() - cursor[c]
            fit = np.flatnonzero(free >= length)
            if len(fit):
                li = int(fit[0])
                start = cursor[c][li]
                cursor[c][li] = start + length + 40.0  # a junction between two roads
                placed.append((i, c, int(ln["axis"].iat[li]), float(ln["pos"].iat[li]), start))
                break
        else:  # pragma: no cover - communes far too small for their roads
            raise RuntimeError(f"no room for road {i} in {city.slug}")
    road = pd.DataFrame(placed, columns=["road", "commune_code", "axis", "pos", "start"])
    road["n_lamps"] = per_road
    road["road_id"] = [f"{city.abbr}-R-{i + 1:03d}" for i in range(n_roads)]
    road["road_name"] = street_names(rng, n_roads)
    geoms, lamp_parts = [], []
    for c, grp in road.groupby("commune_code", sort=False):
        lay = parcels.layouts[c]
        ax, pos, st = grp["axis"].to_numpy(), grp["pos"].to_numpy(), grp["start"].to_numpy()
        length = grp["n_lamps"].to_numpy() * LAMP_SPACING
        x0, y0 = _to_xy(lay, ax, pos, st)
        x1, y1 = _to_xy(lay, ax, pos, st + length)
        geoms.append(
            pd.Series(
                shapely.linestrings(
                    np.stack([np.stack([x0, x1], 1), np.stack([y0, y1], 1)], axis=2)
                ),
                index=grp.index,
            )
        )
        rep = np.repeat(np.arange(len(grp)), grp["n_lamps"].to_numpy())
        within = np.concatenate([np.arange(k) for k in grp["n_lamps"].to_numpy()])
        t = st[rep] + LAMP_SPACING / 2 + LAMP_SPACING * within
        lx, ly = _to_xy(lay, ax[rep], pos[rep], t)
        lamp_parts.append(
            pd.DataFrame({"road": grp.index.to_numpy()[rep], "x": lx, "y": ly, "order": within})
        )
    road["geometry"] = pd.concat(geoms).sort_index()
    lamps = pd.concat(lamp_parts).sort_values(["road", "order"], kind="stable")
    lamps = lamps.reset_index(drop=True)
    lamps["commune_code"] = road["commune_code"].to_numpy()[lamps["road"].to_numpy()]
    return Roads(road, lamps)


def generate_lamps(roads: Roads, city: City, *, seed: int) -> pd.DataFrame:
    """The lighting control centre's lamp inventory (layer ``den_chieu_sang``)."""
    rng = rng_for(seed, STREAM_LAMPS, city.index, 1)
    lamps = roads.lamps
    n, nr = len(lamps), len(roads.table)
    r = lamps["road"].to_numpy()
    road_power = pick(rng, (150, 120, 90, 60), (2, 3, 3, 2), nr)
    main = roads.table.index.to_numpy() < nr // 5
    road_power[main] = pick(rng, (150, 120), (1, 1), int(main.sum()))
    power = road_power[r].astype(np.int32)
    swap = rng.random(n) < 0.05
    power[swap] = pick(rng, (60, 90, 120, 150), (1, 1, 1, 1), int(swap.sum())).astype(np.int32)
    year = rng.integers(2016, 2024, nr)[r]
    replaced = rng.random(n) < 0.1
    year = np.where(replaced, np.minimum(year + rng.integers(1, 4, n), REFERENCE_YEAR), year)
    first = np.concatenate([[0], np.cumsum(roads.table["n_lamps"].to_numpy())[:-1]])
    cabinets_per_road = -(-roads.table["n_lamps"].to_numpy() // LAMPS_PER_CABINET)
    cab_first = np.concatenate([[0], np.cumsum(cabinets_per_road)[:-1]])
    cab = cab_first[r] + (np.arange(n) - first[r]) // LAMPS_PER_CABINET + 1
    return pd.DataFrame(
        {
            "lamp_id": [f"{city.abbr}-L-{i:06d}" for i in range(1, n + 1)],
            "road_id": roads.table["road_id"].to_numpy()[r],
            "road_name": roads.table["road_name"].to_numpy()[r],
            "status": pick(rng, ("on", "off", "fault", "maintenance"), (90, 4, 4, 2), n),
            "power_w": power,
            "install_year": year.astype(np.int32),
            "cabinet_id": [f"{city.abbr}-TD-{c:03d}" for c in cab],
            "commune_code": lamps["commune_code"].to_numpy(),
            "city": city.slug,
            "geometry": shapely.points(lamps["x"].to_numpy(), lamps["y"].to_numpy()),
        }
    )


WIFI_PLACES = {
    "DKV": "Công viên",
    "TMD": "Trung tâm thương mại",
    "TSC": "Trụ sở UBND",
    "DGD": "Trường học",
    "DVH": "Nhà văn hóa",
    "DTT": "Sân thể thao",
    "DCH": "Chợ",
    "DYT": "Trạm Y tế",
}


def _public_parcels(rng: np.random.Generator, parcels: Parcels, n: int) -> np.ndarray:
    table = parcels.table
    base = table["base_code"].to_numpy(dtype=object)
    weight = np.where(np.isin(base, list(WIFI_PLACES)), 6.0, 1.0)
    weight[table["invalid"].to_numpy()] = 0.0
    return np.sort(rng.choice(len(base), size=n, replace=False, p=weight / weight.sum()))


def generate_wifi(parcels: Parcels, *, seed: int) -> pd.DataFrame:
    """Free public wifi hotspots (EPSG:5899 x/y; the CSV writer converts to lon/lat)."""
    city = parcels.city
    rng = rng_for(seed, STREAM_WIFI, city.index)
    n = WIFI[city.slug]
    idx = _public_parcels(rng, parcels, n)
    t = parcels.table.iloc[idx]
    place = t["base_code"].map(WIFI_PLACES).fillna("Khu dân cư").to_numpy(dtype=object)
    short = np.array([short_name(c) for c in t["commune_name"]], dtype=object)
    return pd.DataFrame(
        {
            "hotspot_id": [f"{city.abbr}-WF-{i:03d}" for i in range(1, n + 1)],
            "name": "Wifi " + place + " " + short,
            "ssid": f"{WIFI_SSID[city.slug]}_Free_WiFi",
            "x": t["cx"].to_numpy(),
            "y": t["cy"].to_numpy(),
            "status": pick(rng, ("active", "offline"), (93, 7), n),
            "provider": pick(rng, ("VNPT", "Viettel", "MobiFone"), (6, 3, 1), n),
            "commune_code": t["MAXA"].to_numpy(),
            "city": city.slug,
        }
    )


CAMERA_KINDS = {
    "ha_long": (("traffic", "security", "smart"), (55, 35, 10)),
    "uong_bi": (("traffic", "security"), (60, 40)),
    "cam_pha": (("traffic", "security"), (60, 40)),
}
CAMERA_LABEL = {
    "traffic": "giao thông",
    "security": "an ninh",
    "border": "biên giới",
    "smart": "thông minh",
}


def _sectors(x: np.ndarray, y: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """'S1'…'Sn' from a cols × rows grid of easting/northing quantiles (north-west first)."""
    qx = np.quantile(x, np.linspace(0, 1, cols + 1)[1:-1]) if cols > 1 else np.array([])
    qy = np.quantile(y, np.linspace(0, 1, rows + 1)[1:-1]) if rows > 1 else np.array([])
    col = np.searchsorted(qx, x, side="right")
    row = rows - 1 - np.searchsorted(qy, y, side="right")
    return np.char.add("S", (row * cols + col + 1).astype(str)).astype(object)


def generate_cameras(roads: Roads, city: City, *, seed: int) -> pd.DataFrame:
    """Cameras next to lamp posts (EPSG:5899 geometry; written as GeoJSON in WGS84)."""
    rng = rng_for(seed, STREAM_CAMERAS, city.index)
    lamps = roads.lamps
    n = CAMERAS[city.slug]
    if city.slug == "mong_cai":
        north = np.argsort(-lamps["y"].to_numpy(), kind="stable")
        border = rng.choice(
            north[: max(len(north) // 10, MONG_CAI_BORDER_CAMERAS)],
            MONG_CAI_BORDER_CAMERAS,
            replace=False,
        )
        rest = np.setdiff1d(np.arange(len(lamps)), border)
        smart = rng.choice(rest, n - MONG_CAI_BORDER_CAMERAS, replace=False)
        idx = np.concatenate([smart, border])
        kind = np.array(["smart"] * len(smart) + ["border"] * len(border), dtype=object)
        order = np.argsort(idx, kind="stable")
        idx, kind = idx[order], kind[order]
    else:
        idx = np.sort(rng.choice(len(lamps), n, replace=False))
        kind = pick(rng, *CAMERA_KINDS[city.slug], n)
    angle = rng.uniform(0, 2 * np.pi, n)
    x = lamps["x"].to_numpy()[idx] + 1.5 * np.cos(angle)
    y = lamps["y"].to_numpy()[idx] + 1.5 * np.sin(angle)
    road_name = roads.table["road_name"].to_numpy()[lamps["road"].to_numpy()[idx]]
    label = pd.Series(kind).map(CAMERA_LABEL).to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "camera_id": [f"{city.abbr}-CAM-{i:04d}" for i in range(1, n + 1)],
            "name": "Camera " + label + " " + road_name,
            "sector": _sectors(x, y, *SECTOR_GRID[city.slug]),
            "kind": kind,
            "status": pick(rng, ("online", "offline"), (94, 6), n),
            "commune_code": lamps["commune_code"].to_numpy()[idx],
            "city": city.slug,
            "geometry": shapely.points(x, y),
        }
    )


def pipe_count(city: City, scale: float) -> int:
    """Water pipe segments of a city: ~500 at scale 1, scaled up to 4× at most."""
    return max(50, round(PIPES_PER_CITY * min(scale, 4.0)))


def generate_pipes(
    parcels: Parcels, communes: pd.DataFrame, *, scale: float, seed: int
) -> pd.DataFrame:
    """Water mains along the grid streets, cut into 50-400 m segments (layer ``ong_cap_nuoc``)."""
    city = parcels.city
    codes = list(parcels.layouts)
    weights = parcels.table["MAXA"].value_counts().reindex(codes).to_numpy(dtype=float)
    per_commune = allocate(pipe_count(city, scale), weights, minimum=3)
    inner = communes.set_index("commune_code")["inner"]
    frames = []
    for zone, (code, n) in enumerate(zip(codes, per_commune, strict=True), start=1):
        rng = rng_for(seed, STREAM_PIPES, int(code))
        lay = parcels.layouts[code]
        lines = _grid_lines(lay, inner[code], offset=3.0)  # under the pavement, not the lamps
        for margin in (100.0, 400.0, 1e9):
            t0 = np.maximum(lines["t0"].to_numpy(), lines["lo"].to_numpy() - margin)
            t1 = np.minimum(lines["t1"].to_numpy(), lines["hi"].to_numpy() + margin)
            span = np.maximum(t1 - t0, 0)
            m = int(span.max() // 50) + 2
            # 52-392 m along the street: the bends stretch a chord by less than 2 %.
            seg = rng.uniform(52, 392, (len(lines), m))
            end = np.cumsum(seg, axis=1)
            ok = end <= span[:, None]
            if ok.sum() >= n:
                break
        li, si = np.nonzero(ok)
        a = t0[li] + end[li, si] - seg[li, si]
        b = t0[li] + end[li, si]
        axis, pos = lines["axis"].to_numpy()[li], lines["pos"].to_numpy()[li]
        xa, ya = _to_xy(lay, axis, pos, a)
        xb, yb = _to_xy(lay, axis, pos, b)
        mid = np.hypot((xa + xb) / 2 - lay.frame.cx, (ya + yb) / 2 - lay.frame.cy)
        take = np.sort(np.argsort(mid, kind="stable")[:n])
        trunk = lines["rank"].to_numpy()[li][take] == 0
        k = len(take)
        diameter = np.where(
            trunk,
            pick(rng, (300, 400, 600), (50, 35, 15), k),
            pick(rng, (100, 150, 200), (40, 35, 25), k),
        ).astype(np.int32)
        material = np.where(
            diameter >= 300,
            pick(rng, ("gang_deo", "thep", "HDPE"), (60, 25, 15), k),
            pick(rng, ("HDPE", "uPVC", "gang_deo"), (50, 40, 10), k),
        )
        frames.append(
            pd.DataFrame(
                {
                    "diameter_mm": diameter,
                    "material": material,
                    "install_year": rng.integers(1995, REFERENCE_YEAR, k).astype(np.int32),
                    "pressure_zone": f"{city.abbr}-PZ-{zone:02d}",
                    "commune_code": code,
                    "geometry": shapely.linestrings(
                        np.stack(
                            [np.stack([xa[take], xb[take]], 1), np.stack([ya[take], yb[take]], 1)],
                            axis=2,
                        )
                    ),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "pipe_id", [f"{city.abbr}-P-{i:05d}" for i in range(1, len(out) + 1)])
    out["city"] = city.slug
    return out


WATER_PARAMETERS = ("pH;DO;TSS", "pH;DO;TSS;COD;NH4", "pH;DO;TSS;Turbidity")
AIR_PARAMETERS = ("PM2.5;PM10;NO2", "PM2.5;PM10;NO2;SO2;CO;O3")


def generate_sensors(parcels: Parcels, *, seed: int) -> pd.DataFrame:
    """Water- and air-quality monitoring stations (EPSG:5899 x/y)."""
    city = parcels.city
    rng = rng_for(seed, STREAM_SENSORS, city.index)
    table = parcels.table
    base = table["base_code"].to_numpy(dtype=object)
    valid = ~table["invalid"].to_numpy()
    half = SENSORS_PER_CITY // 2
    w_water = np.where(np.isin(base, ["SON", "NTS", "DTL"]), 20.0, 1.0) * valid
    w_air = np.where(np.isin(base, ["SKC", "TMD", "DGT"]), 10.0, 1.0) * valid
    water = rng.choice(len(base), half, replace=False, p=w_water / w_water.sum())
    w_air[water] = 0.0
    air = rng.choice(len(base), SENSORS_PER_CITY - half, replace=False, p=w_air / w_air.sum())
    idx = np.concatenate([water, air])
    kind = np.array(["water_quality"] * half + ["air_quality"] * (len(idx) - half), dtype=object)
    t = table.iloc[idx]
    short = np.array([short_name(c) for c in t["commune_name"]], dtype=object)
    label = np.where(
        kind == "water_quality", "Trạm quan trắc nước mặt ", "Trạm quan trắc không khí "
    )
    params = np.where(
        kind == "water_quality",
        pick(rng, WATER_PARAMETERS, (1, 1, 1), len(idx)),
        pick(rng, AIR_PARAMETERS, (1, 1), len(idx)),
    )
    return pd.DataFrame(
        {
            "sensor_id": [f"{city.abbr}-QT-{i:02d}" for i in range(1, len(idx) + 1)],
            "name": label + short,
            "kind": kind,
            "x": t["cx"].to_numpy(),
            "y": t["cy"].to_numpy(),
            "status": pick(rng, ("online", "offline", "maintenance"), (85, 10, 5), len(idx)),
            "commune_code": t["MAXA"].to_numpy(),
            "parameters": params,
            "city": city.slug,
        }
    )


# Environmental readings: (typical, spread, unit, decimals) per parameter, within the QCVN
# ranges a monitoring station in an urban area reports. Added by the planning/operations work.
READING_PARAMETERS = {
    "pH": (7.3, 0.4, None, 2),
    "DO": (5.5, 1.0, "mg/L", 2),
    "TSS": (35.0, 12.0, "mg/L", 1),
    "COD": (18.0, 6.0, "mg/L", 1),
    "NH4": (0.6, 0.3, "mg/L", 2),
    "Turbidity": (25.0, 10.0, "NTU", 1),
    "PM2.5": (32.0, 12.0, "µg/m³", 1),
    "PM10": (58.0, 18.0, "µg/m³", 1),
    "NO2": (28.0, 10.0, "µg/m³", 1),
    "SO2": (14.0, 5.0, "µg/m³", 1),
    "CO": (1500.0, 500.0, "µg/m³", 0),
    "O3": (60.0, 20.0, "µg/m³", 1),
}
ENV_READING_HOURS = 24  # hourly, the day before the reference date


def generate_env_readings(sensors: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Hourly readings of every parameter of every sensor (long format, +07:00 times).

    Sensors offline or in maintenance stopped reporting 6 hours before the end, so their
    latest readings are older: what the operations centre sees for a silent station.
    """
    end = REFERENCE_DATE.astype("datetime64[h]")
    frames = []
    for s, row in enumerate(sensors.itertuples(index=False)):
        rng = rng_for(seed, STREAM_SENSORS, 1000 + s)
        hours = ENV_READING_HOURS - (6 if row.status != "online" else 0)
        stamps = end - np.arange(ENV_READING_HOURS, ENV_READING_HOURS - hours, -1)
        observed = np.char.add(np.datetime_as_string(stamps, unit="s").astype(str), "+07:00")
        daily = np.sin(2 * np.pi * (np.arange(hours) + rng.uniform(0, 24)) / 24)
        for parameter in row.parameters.split(";"):
            typical, spread, unit, decimals = READING_PARAMETERS[parameter]
            level = typical + spread * rng.uniform(-0.5, 0.5)
            value = level + 0.3 * spread * daily + rng.normal(0, 0.1 * spread, hours)
            frames.append(
                pd.DataFrame(
                    {
                        "sensor_id": row.sensor_id,
                        "observed_at": observed,
                        "parameter": parameter,
                        "value": np.char.mod(f"%.{decimals}f", np.maximum(value, 0)),
                        "unit": unit or "",
                        "city": row.city,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)
