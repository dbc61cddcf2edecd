"""The disaster-risk rule files (etl/rules/disaster_risk/): checked, and judged as written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdi.errors import ConfigError
from sdi.hazard.rules import LEVEL_COLOURS, load_rules, rules_dir


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


@pytest.mark.parametrize(
    ("storm", "level"), [(5, None), (6, 3), (9, 3), (10, 4), (13, 4), (14, 5), (16, 5)]
)
def test_typhoon_levels(storm, level) -> None:
    rule = load_rules().hazards["typhoon"]
    verdict = rule.judge({"storm_level": storm, "setting": "coast", "wind_level": 6})
    assert (verdict[0] if verdict else None) == level


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
