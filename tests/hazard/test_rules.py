"""The disaster-risk rule files (etl/rules/disaster_risk/): checked, and judged as written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdi.errors import ConfigError
from sdi.hazard.rules import LEVEL_COLOURS, UNREAD_MARK, load_rules, rules_dir


def test_every_rule_file_cites_an_article_of_decision_18() -> None:
    rules = load_rules()
    assert set(rules.hazards) == {
        "heavy_rain",
        "flash_flood_landslide",
        "typhoon",
        "storm_surge",
        "river_flood",
    }
    for rule in rules.hazards.values():
        assert rule.article.startswith("Điều ")
        for criterion in rule.criteria:
            assert criterion.clause and criterion.text["vi"] and criterion.text["en"]
            assert rule.citation(criterion).startswith("Quyết định 18/2021/QĐ-TTg, Điều ")
    assert (rules.combination.article, rules.combination.clause) == ("Điều 4", "khoản 4")


def test_official_colours_of_article_4() -> None:
    assert LEVEL_COLOURS == {
        1: "#9fd7f5",
        2: "#fff59d",
        3: "#ffa500",
        4: "#e53935",
        5: "#8e24aa",
    }


@pytest.mark.parametrize(
    ("r24", "prior", "susceptibility", "level"),
    [
        (99.9, 50, "high", None),  # below the article's 100 mm
        (100, 50, "high", 1),  # "từ 100 mm đến 200 mm": both ends included
        (200, 50, "high", 1),
        (200.1, 50, "high", 2),  # "trên 200 mm đến 400 mm"
        (150, 50, "very_high", 2),
        (150, 5, "very_high", None),  # no rain before: the article's condition is not met
        (300, 50, "very_high", 3),
        (450, 50, "low", 1),
        (450, 50, "high", 3),
    ],
)
def test_flash_flood_and_landslide_follow_article_46(r24, prior, susceptibility, level) -> None:
    rule = load_rules().hazards["flash_flood_landslide"]
    verdict = rule.judge({"r24_mm": r24, "prior_mm": prior, "susceptibility": susceptibility})
    assert (verdict[0] if verdict else None) == level


# Article 42's table, column "vùng biển ven bờ, đất liền Đông Bắc Bộ ..." (Quảng Ninh's coast
# and land): 6–9 → 3, 10–11 → 3, 12–13 → 4, 14–15 → 4, ≥ 16 → 5.
@pytest.mark.parametrize(
    ("storm", "level"),
    [(5, None), (6, 3), (9, 3), (10, 3), (11, 3), (12, 4), (13, 4), (14, 4), (15, 4), (16, 5)],
)
@pytest.mark.parametrize("setting", ["coast", "land"])
def test_typhoon_levels_follow_article_42(storm, level, setting) -> None:
    rule = load_rules().hazards["typhoon"]
    verdict = rule.judge({"storm_level": storm, "setting": setting, "wind_level": 6})
    assert (verdict[0] if verdict else None) == level
    if verdict:
        assert rule.citation(verdict[1]).startswith("Quyết định 18/2021/QĐ-TTg, Điều 42 khoản")
        assert UNREAD_MARK not in rule.citation(verdict[1])


@pytest.mark.parametrize(
    ("r12", "r24", "level"),
    [
        (40, 99.9, None),
        (50, 60, 1),  # "từ 50 mm đến 100 mm trong 12 giờ"
        (100, 100, 1),  # both ends of both ranges included
        (100.1, 99.9, None),  # over the 12-hour range, under the 24-hour one
        (30, 200, 1),
        (30, 200.1, 2),
    ],
)
def test_heavy_rain_level_1_follows_article_44_clause_1(r12, r24, level) -> None:
    rule = load_rules().hazards["heavy_rain"]
    verdict = rule.judge({"r12_mm": r12, "r24_mm": r24, "r48_mm": r24, "r72_mm": r24})
    assert (verdict[0] if verdict else None) == level
    if level == 1:
        assert rule.citation(verdict[1]) == "Quyết định 18/2021/QĐ-TTg, Điều 44 khoản 1"


@pytest.mark.parametrize(
    ("alarm", "above3", "level"),
    [(1, -2.0, 1), (2, -1.0, 1), (3, 0.0, 2), (3, 0.99, 2), (3, 1.0, 3)],
)
def test_river_flood_follows_article_45_region_1(alarm, above3, level) -> None:
    rule = load_rules().hazards["river_flood"]
    verdict = rule.judge({"alarm_level": alarm, "above_alarm3_m": above3})
    assert verdict is not None and verdict[0] == level
    # level 3 from alarm 3 + 1 m was not read in the article: its citation says so
    assert (UNREAD_MARK in rule.citation(verdict[1])) == (level == 3)


def test_unread_criteria_are_marked_where_they_are_cited() -> None:
    rules = load_rules()
    status = {h: r.source_status for h, r in rules.hazards.items()}
    assert status == {
        "typhoon": "read",
        "flash_flood_landslide": "partly_read",
        "heavy_rain": "partly_read",
        "river_flood": "partly_read",
        "storm_surge": "unread",
    }
    surge = rules.hazards["storm_surge"]
    assert all(not c.read for c in surge.criteria)
    assert all(UNREAD_MARK in surge.citation(c) for c in surge.criteria)
    # clause 1 of Article 46 was read; clauses 2 and 3 were not
    landslide = rules.hazards["flash_flood_landslide"]
    assert {c.level for c in landslide.criteria if c.read} == {1}


def test_a_file_said_read_with_an_unread_criterion_is_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "typhoon.yml"
    path.write_text(
        path.read_text().replace("    clause: khoản 3\n", "    clause: khoản 3\n    read: false\n")
    )
    with pytest.raises(ConfigError, match="source_status 'read'"):
        load_rules(directory)


@pytest.mark.parametrize(
    ("levels", "combined"),
    [
        ({"typhoon": 4}, (4, 0)),
        ({"typhoon": 4, "heavy_rain": 1}, (4, 0)),
        ({"typhoon": 3, "heavy_rain": 2}, (4, 1)),
        ({"typhoon": 4, "storm_surge": 3}, (5, 2)),
        ({"heavy_rain": 2, "flash_flood_landslide": 2}, (3, 1)),
        ({"heavy_rain": 3, "flash_flood_landslide": 3}, (5, 2)),
        ({"typhoon": 5, "storm_surge": 5}, (5, 2)),  # at most level 5
    ],
)
def test_article_4_raise(levels, combined) -> None:
    level, raised, _ = load_rules().combination.combine(levels)
    assert (level, raised) == combined


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(rules_dir(), target)
    return target


def test_a_wrong_rule_file_is_refused_with_file_and_line(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "heavy_rain.yml"
    path.write_text(path.read_text().replace("level: 4", "level: 6"))
    with pytest.raises(ConfigError) as error:
        load_rules(directory)
    assert "heavy_rain.yml:" in str(error.value) and "6" in str(error.value)


def test_a_criterion_on_an_undeclared_measure_is_refused(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "storm_surge.yml"
    path.write_text(path.read_text().replace("{surge_height_m: {min: 3}}", "{surge_m: {min: 3}}"))
    with pytest.raises(ConfigError, match="undeclared measure"):
        load_rules(directory)
