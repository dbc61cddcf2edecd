"""Static SQL kept in ``.sql`` files beside the code that runs it, loaded by name."""

from __future__ import annotations

from functools import cache
from importlib import resources

from psycopg import sql


@cache
def load(package: str, name: str) -> str:
    """The text of ``<package>/sql/<name>.sql``."""
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def query(package: str, name: str) -> sql.SQL:
    """``load(package, name)`` as a psycopg ``sql.SQL``, ready for ``.format(...)``."""
    return sql.SQL(load(package, name))  # type: ignore[arg-type]
