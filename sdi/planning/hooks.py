"""What the ETL runner calls at the end of a successful load: the derived planning tables
(registered by :func:`after_load_hooks`, an ``sdi.after_load`` entry point in
``pyproject.toml``, found by ``sdi/etl/hooks.py``).

Kept light (the model only): the refresh is imported when a hook runs.
"""

from __future__ import annotations

import psycopg

from sdi.etl.hooks import AfterLoadHook
from sdi.planning.model import LAYER_INPUTS


def after_load_hooks() -> tuple[AfterLoadHook, ...]:
    """One hook per set of inputs: derived tables with the same inputs are refreshed together,
    so they can share work (buildings without permit and stalled permits match permits and
    buildings once)."""
    groups: dict[frozenset[str], list[str]] = {}
    for table, inputs in LAYER_INPUTS.items():
        groups.setdefault(inputs, []).append(table)
    return tuple(
        AfterLoadHook(
            ", ".join(tables),
            inputs,
            "sdi.planning.hooks:after_load",
            tuple(tables),
            scoped=True,
        )
        for inputs, tables in groups.items()
    )


def after_load(
    conn: psycopg.Connection,
    table: str,
    run_id: int,
    *,
    layers: tuple[str, ...],
    communes: frozenset[str] | None = None,
) -> str | None:
    """Rebuild ``layers`` after a load of ``table``; their summary line. After a load of
    parcels or buildings with the ``communes`` it touched, only those communes' rows."""
    from sdi.planning.refresh import SCOPED_INPUTS, refresh

    scoped = communes if table in SCOPED_INPUTS else None
    return refresh(conn, run_id=run_id, trigger=table, layers=layers, communes=scoped).summary()
