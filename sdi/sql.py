"""Static SQL kept in ``.sql`` files, loaded by name.

Long static statements live next to the code that runs them, in a ``sql/`` directory of
its package (``sdi/api/sql/feature_geojson.sql`` for ``load("sdi.api", "feature_geojson")``),
where an editor highlights them and a reviewer reads them as SQL. The files ship as package
data (``**/*.sql`` in pyproject), so they are read through :mod:`importlib.resources` and
work from a wheel as from a checkout. Dynamic names are composed by the caller with
:class:`psycopg.sql.Identifier` placeholders (``{table}``), values are bound parameters.

>>> load("sdi.api", "does_not_exist")
Traceback (most recent call last):
...
FileNotFoundError: no SQL file sql/does_not_exist.sql in package sdi.api
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from psycopg import Cursor, sql
from psycopg.rows import Row

_NAME = re.compile(r"[A-Za-z0-9_]+")


@lru_cache(maxsize=256)
def load(package: str, name: str) -> str:
    """The text of ``<package dir>/sql/<name>.sql`` (read once per process)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a SQL file name: {name!r} (letters, digits and _ only)")
    path = resources.files(package).joinpath("sql", f"{name}.sql")
    if not path.is_file():
        raise FileNotFoundError(f"no SQL file sql/{name}.sql in package {package}")
    return path.read_text(encoding="utf-8")


def query(package: str, name: str) -> sql.SQL:
    """:func:`load` as a :class:`psycopg.sql.SQL`, ready for ``.format(...)`` or execute."""
    return sql.SQL(load(package, name))  # static text from the package, no values in it


def one(cursor: Cursor[Row]) -> Row:
    """The row of a statement that always returns one (an aggregate, ``INSERT ... RETURNING``).

    A statement that returned none is a bug, reported as such rather than as an index error.
    """
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row where one was certain")
    return row
