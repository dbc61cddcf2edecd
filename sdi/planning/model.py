"""The planning rules in one place: thresholds, groups, optional hazard tables, and the zoning
compatibility table (``etl/codes/zoning_compatibility.yml``).

``docs/planning.md`` explains each choice for planners; change a value here and there together.
This module is imported by the ETL's after-load registry, so it stays light (no database, no
heavy imports).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sdi.errors import ConfigError
from sdi.hazard.model import ZONE_HAZARDS

# -- permits and buildings ---------------------------------------------------------------------
# A permit matches a building when its point lies in the footprint or within this distance of
# it (permit coordinates are the address point or the lot's centre; footprints are surveyed).
PERMIT_MATCH_DISTANCE_M: Final = 5.0
# ... and it was issued no later than the end of the year after the building was finished (a
# permit issued long after is for another construction on the site). Buildings with no year,
# and permits with no date, match on location alone.
PERMIT_AFTER_BUILT_TOLERANCE_YEARS: Final = 1
# The construction department's register is digital since 1995: an older building without a
# permit is "built_before_register", not evidence of unpermitted construction.
PERMIT_REGISTER_SINCE_YEAR: Final = 1995
# A permit older than this with no building at its location is a stalled project.
STALLED_AFTER_MONTHS: Final = 12

# -- indicators --------------------------------------------------------------------------------
# Green and public space: parks, squares, recreation and community space (DKV) and sports
# grounds (DTT).
GREEN_PUBLIC_CODES: Final = ("DKV", "DTT")
# The land-use groups of the mix entropy are the land-use code list's groups (one definition,
# shared with the flood warnings): etl/codes/land_use.yml, ``groups``.

# The hazards given as zones (landslide, storm surge) are the hazard package's:
# sdi.hazard.model.ZONE_HAZARDS.

# -- what each derived table is built from -----------------------------------------------------
# A successful ETL load of any input refreshes the table (sdi/etl/hooks.py), inside the load's
# transaction.
LAYER_INPUTS: Final[dict[str, frozenset[str]]] = {
    "planning.land_use_conflicts": frozenset({"land.parcels", "land.zoning"}),
    "planning.buildings_without_permit": frozenset(
        {"construction.buildings", "construction.permits"}
    ),
    "planning.stalled_permits": frozenset({"construction.buildings", "construction.permits"}),
    "planning.hazard_parcels": frozenset(
        {"land.parcels", "hazard.flood_zones", *(h.table for h in ZONE_HAZARDS)}
    ),
    "planning.hazard_buildings": frozenset(
        {"construction.buildings", "hazard.flood_zones", *(h.table for h in ZONE_HAZARDS)}
    ),
    "planning.commune_indicators": frozenset(
        {"admin.communes", "land.parcels", "construction.buildings"}
    ),
    "ops.commune_summary": frozenset(
        {
            "admin.communes",
            "utility.street_lamps",
            "utility.wifi_hotspots",
            "utility.cameras",
            "utility.env_sensors",
            "utility.env_readings",
        }
    ),
}
OPERATIONS_LAYERS: Final = ("ops.commune_summary",)
PLANNING_LAYERS: Final = tuple(t for t in LAYER_INPUTS if t not in OPERATIONS_LAYERS)


# -- zoning compatibility ----------------------------------------------------------------------
@dataclass(frozen=True)
class Compatibility:
    """Planned use of a zone → the parcel land-use codes it permits (``everywhere`` included)."""

    everywhere: frozenset[str]
    permitted: dict[str, frozenset[str]]
    labels: dict[str, str]

    def conflicting(self, planned_use: str, codes: list[str]) -> list[str] | None:
        """The codes not permitted in a zone of ``planned_use``; None when it is not assessed.

        The SQL of ``refresh.py`` applies the same rule to every parcel at once.

        >>> c = Compatibility(frozenset({"DGT"}), {"ODT": frozenset({"ODT", "DGT"})}, {})
        >>> c.conflicting("ODT", ["ODT", "CLN"]), c.conflicting("ODT", ["DGT"])
        (['CLN'], [])
        >>> c.conflicting("X", []) is None
        True
        """
        if planned_use not in self.permitted:
            return None
        return sorted({c for c in codes if c not in self.permitted[planned_use]})


def load_compatibility(path: Path | None = None) -> Compatibility:
    """Read and check the compatibility table; an error names the file, line and code."""
    from sdi.declarative import load_yaml
    from sdi.etl.codes import code_list
    from sdi.settings import get_settings

    path = path or get_settings().home / "etl" / "codes" / "zoning_compatibility.yml"
    data, lines = load_yaml(path)
    land_use = code_list("land_use")
    problems: list[str] = []

    def codes_at(value: object, *at: str | int) -> frozenset[str]:
        where = f"{path}:{lines.get(at, lines.get(at[:-1], '?'))}: {'.'.join(map(str, at))}"
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where}: expected a list of land-use codes, e.g. [ODT, TMD]")
            return frozenset()
        for code in value:
            if code not in land_use.current:
                current = land_use.normalise(code)
                hint = (
                    f"superseded by {current}: write {current}"
                    if current
                    else "not a land-use code of etl/codes/land_use.yml"
                )
                problems.append(f"{where}: {code}: {hint}")
        return frozenset(value)

    if not isinstance(data, dict) or not isinstance(data.get("zones"), dict):
        raise ConfigError(f"{path}: expected a mapping with `everywhere` and `zones`")
    everywhere = codes_at(data.get("everywhere", []), "everywhere")
    permitted, labels = {}, {}
    for zone, rule in data["zones"].items():
        if not isinstance(rule, dict) or "permitted" not in rule:
            problems.append(
                f"{path}:{lines.get(('zones', zone), '?')}: zones.{zone}: "
                "expected `permitted: [codes…]` (and optionally `label`)"
            )
            continue
        unknown = set(rule) - {"permitted", "label"}
        if unknown:
            problems.append(
                f"{path}:{lines.get(('zones', zone), '?')}: zones.{zone}: unknown "
                f"key {', '.join(sorted(unknown))} (allowed: permitted, label)"
            )
        permitted[str(zone)] = codes_at(rule["permitted"], "zones", zone, "permitted") | everywhere
        labels[str(zone)] = str(rule.get("label", zone))
    if problems:
        raise ConfigError("\n".join(problems))
    return Compatibility(everywhere, permitted, labels)
