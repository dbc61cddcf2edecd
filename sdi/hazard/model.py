"""The warning model in one place: alarm levels, which flood zones a level concerns, and how
exposure is counted. ``docs/warnings.md`` explains each choice for the disaster-prevention
committee; change a value here and there together.
"""

from __future__ import annotations

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

# Land-use groups of Circular 08/2024/TT-BTNMT (codes as in etl/codes/land_use.yml). A parcel
# with several codes ("ODT+TMD") counts once in each of its groups.
LAND_USE_GROUPS: Final = {
    "residential": ("ODT", "ONT"),
    "agricultural": ("LUC", "LUK", "HNK", "CLN", "RSX", "RPH", "RDD", "NTS", "CNT", "LMU", "NKH"),
    "state_offices": ("TSC",),
    "defence_security": ("CQP", "CAN"),
    "public_service": ("DVH", "DXH", "DYT", "DGD", "DTT", "DKH", "DNG", "DSK"),
    "business": ("SKK", "SKN", "SKT", "TMD", "SKC", "SKS"),
    "public_use": ("DGT", "DTL", "DNL", "DBV", "DCH", "DRA", "DKV"),
    "religious_cemetery": ("TON", "TIN", "NTD"),
    "water": ("SON", "MNC"),
    "other": ("PNK",),
    "unused": ("BCS", "DCS", "NCS"),
}
OTHER_GROUP: Final = "other"  # codes not listed above

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


def land_use_group_of() -> dict[str, str]:
    """Code → group, for the SQL that counts parcels by group.

    >>> land_use_group_of()["ONT"], land_use_group_of()["DGD"]
    ('residential', 'public_service')
    """
    return {code: group for group, codes in LAND_USE_GROUPS.items() for code in codes}


def level_of(water_level_m: float, thresholds: tuple[float, float, float]) -> int:
    """The alarm level a reading reaches (the SQL in ``warnings.py`` does the same).

    >>> [level_of(w, (2.0, 3.0, 4.0)) for w in (1.99, 2.0, 3.5, 4.0, 9.0)]
    [0, 1, 2, 3, 3]
    """
    reached = [n for n, t in enumerate(thresholds, 1) if t is not None and water_level_m >= t]
    return max(reached, default=0)
