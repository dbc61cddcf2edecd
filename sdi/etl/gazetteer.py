"""Reference lists of administrative names and codes, and the check of a field against one.

A job field with ``gazetteer: commune_name`` (or ``commune_code``, ``district_name``,
``province_name``, …) must hold a value of that list. Names are compared without case,
surrounding spaces or the unit's type word ("Phường Hồng Gai" = "Hồng Gai" = "hồng gai");
an unknown value gets the nearest known names as a suggestion ("Cần Thơn" → "Cần Thơ?").
The lists come from ``etl/reference/`` (see its SOURCE.md): the province's 54 communes of
2025, its 171 communes and 13 districts before the reform, and the country's provinces
before and after 2025.
"""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from sdi.errors import ConfigError
from sdi.settings import get_settings

_ADMIN = "vn-admin-units-2025"
# list name → (file, column)
LISTS: dict[str, tuple[str, str]] = {
    "province_name": ("vn_provinces.csv", "province"),
    "district_name": (f"{_ADMIN}/quang_ninh_wards_legacy_pre2025.csv", "district"),
    "district_code": (f"{_ADMIN}/quang_ninh_wards_legacy_pre2025.csv", "district_code"),
    "commune_name": (f"{_ADMIN}/quang_ninh_communes_2025.csv", "commune"),
    "commune_code": (f"{_ADMIN}/quang_ninh_communes_2025.csv", "commune_code"),
    "legacy_commune_name": (f"{_ADMIN}/quang_ninh_wards_legacy_pre2025.csv", "commune"),
    "legacy_commune_code": (f"{_ADMIN}/quang_ninh_wards_legacy_pre2025.csv", "commune_code"),
}

# Type words in front of a unit's name, longest first.
_TYPE_WORDS = re.compile(
    r"^(tỉnh|thành phố|tp\.?|thị xã|tx\.?|quận|huyện|phường|xã|thị trấn|tt\.?|đặc khu)\s+",
    re.IGNORECASE,
)


def comparable(value: str) -> str:
    """A name as compared: NFC, lower case, single spaces, without its type word.

    >>> comparable("  Phường  Hồng Gai "), comparable("Tỉnh Quảng Ninh")
    ('hồng gai', 'quảng ninh')
    """
    text = " ".join(unicodedata.normalize("NFC", value).split()).lower()
    return _TYPE_WORDS.sub("", text)


class Gazetteer:
    """One reference list: its comparable forms → the names as written."""

    def __init__(self, name: str, values: list[str]) -> None:
        self.name = name
        self.names: dict[str, str] = {}
        for value in values:
            self.names.setdefault(comparable(value), value)

    def __contains__(self, value: str) -> bool:
        return comparable(value) in self.names

    def suggest(self, value: str, n: int = 2) -> list[str]:
        """The nearest known names (as written in the reference), best first."""
        close = difflib.get_close_matches(comparable(value), list(self.names), n=n, cutoff=0.6)
        return [self.names[c] for c in close]

    def explain(self, value: str) -> str:
        """Why ``value`` is refused, with the suggestion if there is one."""
        hints = self.suggest(value)
        hint = f" — did you mean {' or '.join(repr(h + '?') for h in hints)}" if hints else ""
        return f"{value!r} is not a known {self.name.replace('_', ' ')}{hint}"


@lru_cache
def gazetteer(name: str, reference_dir: Path | None = None) -> Gazetteer:
    """The reference list ``name`` (one of :data:`LISTS`)."""
    if name not in LISTS:
        raise ConfigError(f"unknown gazetteer {name!r}; known: {', '.join(LISTS)}")
    file, column = LISTS[name]
    path = (reference_dir or get_settings().home / "etl" / "reference") / file
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            values = [row[column] for row in csv.DictReader(handle) if row.get(column)]
    except (OSError, KeyError) as exc:
        raise ConfigError(
            f"gazetteer {name}: cannot read column {column} of {path}: {exc}"
        ) from None
    return Gazetteer(name, values)
