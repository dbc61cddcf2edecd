"""Merge rules: which source wins, per attribute, when several departments feed one table.

One YAML file per shared table in ``etl/merge_rules/`` (named after the table, e.g.
``construction.buildings.yml``), checked against ``schemas/merge-rule.schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdi.declarative import load_checked
from sdi.errors import ConfigError
from sdi.settings import Settings, get_settings


@dataclass(frozen=True)
class MergeRule:
    table: str
    sources: tuple[str, ...]  # default order: the first source with a value wins
    attributes: dict[str, tuple[str, ...]]  # per-attribute order, overriding the default

    def priority(self, column: str) -> tuple[str, ...]:
        """Sources in the order they win for ``column``; sources not named come last."""
        order = self.attributes.get(column, self.sources)
        return (*order, *(s for s in self.sources if s not in order))


def rules_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "etl" / "merge_rules"


def load_rule(table: str, settings: Settings | None = None) -> MergeRule:
    path = rules_dir(settings) / f"{table}.yml"
    if not path.exists():
        raise ConfigError(
            f"{table} is fed by several sources (contributes_as) but has no merge rule: "
            f"create {path} (see the README, 'Merging departments')"
        )
    data = load_checked(path, "merge-rule.schema.json")
    sources = tuple(data["sources"])
    attributes = {k: tuple(v) for k, v in data.get("attributes", {}).items()}
    unknown = sorted({s for order in attributes.values() for s in order} - set(sources))
    if unknown:
        raise ConfigError(
            f"{path}: attributes name unknown source(s) {', '.join(unknown)}; "
            f"the sources are {', '.join(sources)}"
        )
    return MergeRule(table=table, sources=sources, attributes=attributes)
