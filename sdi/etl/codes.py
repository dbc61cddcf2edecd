"""Code lists (``etl/codes/*.yml``): the current codes, how superseded ones map to them, and
the groups the codes fall into (the land-use groups of the warnings and the planning indicators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sdi.declarative import load_yaml
from sdi.errors import ConfigError
from sdi.settings import get_settings


@dataclass(frozen=True)
class CodeList:
    name: str
    current: dict[str, str]
    superseded: dict[str, str]
    # group → its codes, in the list's order; a code in no group is in `ungrouped`
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ungrouped: str | None = None

    def normalise(self, code: str) -> str | None:
        """The current code for ``code`` (case and spaces ignored), or None if unknown.

        >>> land_use = CodeList("land_use", {"HNK": "..."}, {"BHK": "HNK"})
        >>> land_use.normalise(" bhk"), land_use.normalise("XYZ")
        ('HNK', None)
        """
        code = code.strip().upper()
        if code in self.current:
            return code
        return self.superseded.get(code)

    def group_of(self) -> dict[str, str]:
        """Code → group, for the SQL that counts features by group.

        >>> land_use = code_list("land_use")
        >>> land_use.group_of()["ONT"], land_use.group_of()["DGD"], land_use.ungrouped
        ('residential', 'public_service', 'other')
        """
        return {code: group for group, codes in self.groups.items() for code in codes}


@lru_cache
def code_list(name: str, codes_dir: Path | None = None) -> CodeList:
    path = (codes_dir or get_settings().home / "etl" / "codes") / f"{name}.yml"
    if not path.exists():
        raise ConfigError(f"code list {name!r} not found: expected {path}")
    data, lines = load_yaml(path)
    groups = {group: tuple(codes) for group, codes in (data.get("groups") or {}).items()}
    for group, codes in groups.items():
        unknown = [c for c in codes if c not in data["current"]]
        if unknown:
            raise ConfigError(
                f"{path}:{lines.get(('groups', group), 1)}: groups.{group}: "
                f"{', '.join(unknown)} not among the current codes"
            )
    return CodeList(
        name=name,
        current=data["current"],
        superseded=data.get("superseded", {}),
        groups=groups,
        ungrouped=data.get("ungrouped"),
    )
