"""The disaster-risk rules of Decision 18/2021/QĐ-TTg: one YAML file per hazard in
``etl/rules/disaster_risk/`` (checked against ``schemas/disaster-risk-rule.schema.json``),
and Article 4's raise rule (``combination.yml``). No threshold lives in code: this module only
reads the files and says which criterion an area's measures meet.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from sdi.declarative import load_checked
from sdi.errors import ConfigError
from sdi.settings import get_settings

SCHEMA = "disaster-risk-rule.schema.json"
DECISION: Final = "18/2021/QĐ-TTg"

# Article 4 clause 3: each level's colour on every map (Appendix XII) and its meaning.
LEVEL_COLOURS: Final = {
    1: "#9fd7f5",  # xanh dương nhạt: light blue, low risk
    2: "#fff59d",  # vàng nhạt: light yellow, medium
    3: "#ffa500",  # da cam: orange, high
    4: "#e53935",  # đỏ: red, very high
    5: "#8e24aa",  # tím: purple, catastrophe
}
LEVEL_LABELS: Final = {
    1: {"vi": "Cấp 1 – rủi ro thấp", "en": "Level 1 – low risk"},
    2: {"vi": "Cấp 2 – rủi ro trung bình", "en": "Level 2 – medium risk"},
    3: {"vi": "Cấp 3 – rủi ro lớn", "en": "Level 3 – high risk"},
    4: {"vi": "Cấp 4 – rủi ro rất lớn", "en": "Level 4 – very high risk"},
    5: {"vi": "Cấp 5 – thảm họa", "en": "Level 5 – catastrophe"},
}


def rules_dir() -> Path:
    return get_settings().home / "etl" / "rules" / "disaster_risk"


# Said after the citation of a criterion not checked against the article's text (``read:
# false`` in its rule file), wherever it is cited: records, history, CAP messages.
UNREAD_MARK: Final = "chưa đối chiếu văn bản / not checked against the text"


@dataclass(frozen=True)
class Criterion:
    level: int
    clause: str
    when: dict[str, dict[str, Any]]
    text: dict[str, str]
    read: bool = True

    def holds(self, measures: dict[str, Any]) -> bool:
        """Every condition holds for the measures (a missing measure fails its condition)."""
        for name, condition in self.when.items():
            value = measures.get(name)
            if value is None:
                return False
            if "in" in condition:
                if value not in condition["in"]:
                    return False
                continue
            if not isinstance(value, int | float):
                return False
            if "min" in condition and not value >= condition["min"]:
                return False
            if "over" in condition and not value > condition["over"]:
                return False
            if "max" in condition and not value <= condition["max"]:
                return False
            if "under" in condition and not value < condition["under"]:
                return False
        return True


@dataclass(frozen=True)
class HazardRule:
    hazard: str
    title: dict[str, str]
    article: str
    source_status: str
    area: str
    measures: dict[str, str]
    criteria: tuple[Criterion, ...]
    actions: dict[int, str]
    path: Path

    def judge(self, measures: dict[str, Any]) -> tuple[int, Criterion] | None:
        """The highest level whose criterion holds, with that criterion; None below level 1."""
        met = [c for c in self.criteria if c.holds(measures)]
        if not met:
            return None
        best = max(met, key=lambda c: c.level)
        return best.level, best

    def citation(self, criterion: Criterion) -> str:
        cited = f"Quyết định {DECISION}, {self.article} {criterion.clause}"
        return cited if criterion.read else f"{cited} ({UNREAD_MARK})"


@dataclass(frozen=True)
class Raise:
    min_hazards: int
    min_level: int
    text: dict[str, str]


@dataclass(frozen=True)
class Combination:
    article: str
    clause: str
    raise_one: Raise
    raise_two: Raise
    max_level: int

    def combine(self, levels: dict[str, int]) -> tuple[int, int, str | None]:
        """(combined level, how many levels it was raised by, the reason) of a commune's
        hazard levels (hazard → level)."""
        if not levels:
            return 0, 0, None
        highest = max(levels.values())
        raised, reason = 0, None
        for by, rule in ((2, self.raise_two), (1, self.raise_one)):
            if sum(1 for v in levels.values() if v >= rule.min_level) >= rule.min_hazards:
                raised, reason = by, rule.text["en"]
                break
        return min(highest + raised, self.max_level), raised, reason


@dataclass(frozen=True)
class RuleSet:
    hazards: dict[str, HazardRule]
    combination: Combination


def _criterion(raw: dict) -> Criterion:
    return Criterion(raw["level"], raw["clause"], raw["when"], raw["text"], raw.get("read", True))


@cache
def _load(directory: Path) -> RuleSet:
    hazards: dict[str, HazardRule] = {}
    combination = None
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise ConfigError(f"no disaster-risk rule files in {directory}")
    for path in files:
        data = load_checked(path, SCHEMA)
        if data.get("combination"):
            combination = Combination(
                data["article"],
                data["clause"],
                Raise(**data["raise_one"]),
                Raise(**data["raise_two"]),
                data["max_level"],
            )
            continue
        if data["hazard"] in hazards:
            raise ConfigError(f"{path}: hazard {data['hazard']!r} has two rule files")
        for raw in data["criteria"]:
            unknown = set(raw["when"]) - set(data["measures"])
            if unknown:
                raise ConfigError(
                    f"{path}: criterion of level {raw['level']} ({raw['clause']}) uses "
                    f"undeclared measure(s) {', '.join(sorted(unknown))}; declared: "
                    f"{', '.join(data['measures'])}"
                )
        status = data.get("source_status", "read")
        unread = sum(1 for raw in data["criteria"] if not raw.get("read", True))
        if (status == "read" and unread) or (status == "unread" and unread < len(data["criteria"])):
            raise ConfigError(
                f"{path}: source_status {status!r} but {unread} of {len(data['criteria'])} "
                "criteria are marked read: false"
            )
        hazards[data["hazard"]] = HazardRule(
            hazard=data["hazard"],
            title=data["title"],
            article=data["article"],
            source_status=data.get("source_status", "read"),
            area=data["area"],
            measures=data["measures"],
            criteria=tuple(_criterion(c) for c in data["criteria"]),
            actions={int(k): v for k, v in data["actions"].items()},
            path=path,
        )
    if combination is None:
        raise ConfigError(f"{directory}: combination.yml (Article 4's raise rule) is missing")
    return RuleSet(hazards, combination)


def load_rules(directory: Path | None = None) -> RuleSet:
    """The rule set (read once per directory)."""
    return _load((directory or rules_dir()).resolve())
