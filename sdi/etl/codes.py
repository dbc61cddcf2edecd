"""Code lists (``etl/codes/*.yml``): the current codes and how superseded ones map to them."""

from __future__ import annotations

from dataclasses import dataclass
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


@lru_cache
def code_list(name: str, codes_dir: Path | None = None) -> CodeList:
    path = (codes_dir or get_settings().home / "etl" / "codes") / f"{name}.yml"
    if not path.exists():
        raise ConfigError(f"code list {name!r} not found: expected {path}")
    data, _ = load_yaml(path)
    return CodeList(name=name, current=data["current"], superseded=data.get("superseded", {}))
