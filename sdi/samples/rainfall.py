"""Rain gauges and their hourly readings, as the hydro-meteorological network delivers them.

One gauge in every second commune of the four cities (at the commune's centroid), so that
half the communes have a gauge of their own and the others take the nearest one
(``docs/hazard.md``). Readings: 168 hours of rainfall ending at the reference date, mostly
dry with a few showers; no 24-hour total reaches the 100 mm of a heavy-rain risk level, so the
sample data raise no risk level (the tests script their own storms).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sdi.samples.common import REFERENCE_DATE, rng_for
from sdi.samples.writers import write_csv

STREAM_RAIN = 40  # rng stream of this module (sdi.samples.common numbers the others)
HOURS = 168
GAUGE_COLUMNS = ("gauge_id", "name", "lon", "lat", "elevation_m", "city")
READING_COLUMNS = ("gauge_id", "observed_at", "rain_mm")


def rain_gauges(communes: pd.DataFrame) -> pd.DataFrame:
    """One gauge in every second commune of the cities (sorted by commune code)."""
    cities = communes[communes["city"].notna()].sort_values("commune_code")
    chosen = cities.iloc[::2]
    return pd.DataFrame(
        {
            "gauge_id": [f"R-{code}" for code in chosen["commune_code"]],
            "name": [f"Trạm đo mưa {name}" for name in chosen["commune_name"]],
            "lon": chosen["lon"].round(6).to_numpy(),
            "lat": chosen["lat"].round(6).to_numpy(),
            "elevation_m": np.round(np.linspace(5.0, 120.0, len(chosen)), 1),
            "city": chosen["city"].to_numpy(),
        }
    )


def rain_readings(gauges: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Hourly rainfall (mm in the hour ending at observed_at) for 7 days, +07:00."""
    end = REFERENCE_DATE.astype("datetime64[h]")
    hours = end - np.arange(HOURS - 1, -1, -1).astype("timedelta64[h]")
    stamps = np.char.add(np.datetime_as_string(hours, unit="s").astype(str), "+07:00")
    frames = []
    for g, gauge in enumerate(gauges["gauge_id"]):
        rng = rng_for(seed, STREAM_RAIN, g)
        wet = rng.random(HOURS) < 0.12  # showers in about one hour in eight
        rain = np.where(wet, np.round(rng.gamma(1.2, 2.5, HOURS), 1), 0.0)
        frames.append(pd.DataFrame({"gauge_id": gauge, "observed_at": stamps, "rain_mm": rain}))
    return pd.concat(frames, ignore_index=True)


def write_rainfall(
    out: Path, communes: pd.DataFrame, add: Callable[..., None], *, seed: int
) -> None:
    """Write hazard/rain_gauges.csv and hazard/rain_readings.csv; ``add(rel, by_city)`` records
    them in the manifest."""
    gauges = rain_gauges(communes)
    readings = rain_readings(gauges, seed=seed)
    write_csv(gauges[list(GAUGE_COLUMNS)], out / "hazard/rain_gauges.csv")
    write_csv(readings[list(READING_COLUMNS)], out / "hazard/rain_readings.csv")
    counts = gauges["city"].value_counts()
    add("hazard/rain_gauges.csv", {str(k): int(v) for k, v in counts.items()})
    add("hazard/rain_readings.csv", {str(k): int(v) * HOURS for k, v in counts.items()})
