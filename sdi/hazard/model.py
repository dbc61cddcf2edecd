"""The warning model in one place: alarm levels, which flood zones a level concerns, how
exposure is counted, and the hazards given as zones (landslide, storm surge) that the planning
layers cross with parcels and buildings. ``docs/warnings.md`` explains each choice for the
disaster-prevention committee; change a value here and there together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Alarm levels (báo động I, II, III): the gauge's thresholds alarm_level_1..3 in hazard.gauges.
# A level is reached when the latest reading is at or above its threshold.
LEVEL_LABELS: Final = {0: "none", 1: "I", 2: "II", 3: "III"}

# Which flood zones a warning covers: the zones linked to the gauge (flood_zones.gauge_code)
# whose return period is at most the level's. The sample zones are nested (10 ⊂ 50 ⊂ 100
# years), so level II covers the 50-year zone. A gauge whose zones are all rarer than the
# level's period gets its most frequent zone (a warning is never left without an area when
# the gauge has zones).
LEVEL_RETURN_PERIOD_YEARS: Final = {1: 10, 2: 50, 3: 100}

# Residents: residential buildings × floors × persons per floor. A Quảng Ninh household has
# about 3.5 persons (2019 census) and a typical urban tube house three floors; 1.2 persons per
# floor gives one household per such house. Buildings with no floor count count as one floor.
PERSONS_PER_FLOOR: Final = 1.2

# Parcels are counted by the land-use groups of the land-use code list
# (etl/codes/land_use.yml, ``groups``), which the planning indicators use too.

# Critical facilities: (kind, land-use code of its parcel, building use_type). A facility is a
# site: a parcel with the code, or a building of the type that does not stand on such a parcel
# (so a school with three buildings on its parcel counts once).
FACILITIES: Final = (
    ("school", "DGD", "education"),
    ("health", "DYT", "health"),
    ("state_office", "TSC", "office"),
)
FACILITY_LIST_LIMIT: Final = 500  # facilities listed by name in a warning's detail

# Tables a warning is derived from: a successful load of any of them recomputes the warnings.
INPUT_TABLES: Final = frozenset(
    {
        "hazard.gauge_readings",
        "hazard.gauges",
        "hazard.flood_zones",
        "construction.buildings",
        "land.parcels",
        "utility.street_lamps",
        "utility.water_pipes",
        "utility.cameras",
    }
)


def level_of(water_level_m: float, thresholds: tuple[float, float, float]) -> int:
    """The alarm level a reading reaches (the SQL in ``warnings.py`` does the same).

    >>> [level_of(w, (2.0, 3.0, 4.0)) for w in (1.99, 2.0, 3.5, 4.0, 9.0)]
    [0, 1, 2, 3, 3]
    """
    reached = [n for n, t in enumerate(thresholds, 1) if t is not None and water_level_m >= t]
    return max(reached, default=0)


# -- hazards given as zones ----------------------------------------------------------------------
@dataclass(frozen=True)
class ZoneHazard:
    """A hazard given as zones with a class; used only when its table exists."""

    name: str  # the value in the planning layers' `hazards` array and the column prefix
    table: str
    class_columns: tuple[str, ...]  # the first that exists holds the class
    # A feature in several zones gets the worst class: the zone with the highest value of the
    # first of `rank_columns` that exists, else the class latest in `classes`.
    rank_columns: tuple[str, ...]
    classes: tuple[str, ...] = ()


# Landslide and storm-surge zones come with migration 0006 (issue 5); a warehouse without them
# simply gets no landslide_class / storm_surge_class values (sdi.planning.refresh).
ZONE_HAZARDS: Final = (
    ZoneHazard(
        "landslide",
        "hazard.landslide_zones",
        ("susceptibility", "susceptibility_class"),
        ("susceptibility_rank",),
        ("low", "moderate", "high", "very_high"),
    ),
    ZoneHazard(
        "storm_surge",
        "hazard.storm_surge_zones",
        ("surge_class",),
        ("surge_height_m",),  # classes '0-1', '1-2', '2-3', '>3' m do not sort as text
    ),
)
