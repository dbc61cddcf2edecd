"""Derived data that follows a load: the registry of after-load hooks.

The runner calls ``after_load(conn, table, run_id)`` at the end of a successful load, inside
the load's transaction. Each hook declares the tables it is derived from; it runs only when
the loaded table is one of them, in the order listed. A failing hook fails (and rolls back)
the load, so a run marked ``succeeded`` always has its derived data up to date.

To add derived data: write a function ``(conn, table, run_id) -> str | None`` (a summary line
for people, or None when there was nothing to do) and list it here with its inputs. Hook
functions are imported only when they run, so a load that triggers none stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module

import psycopg
from psycopg import sql

HookFunction = Callable[[psycopg.Connection, str, int], "str | None"]


@dataclass(frozen=True)
class AfterLoadHook:
    name: str
    inputs: frozenset[str]  # schema.table of the loads that trigger it
    function: str  # "module:function", imported on first use
    layers: tuple[str, ...] = ()  # passed on to planning refreshes: the tables to rebuild

    def run(self, conn: psycopg.Connection, table: str, run_id: int) -> str | None:
        module, name = self.function.split(":")
        function = getattr(import_module(module), name)
        if self.layers:
            return function(conn, run_id=run_id, trigger=table, layers=self.layers).summary()
        return function(conn, table, run_id)


@cache
def registered() -> tuple[AfterLoadHook, ...]:
    """Every after-load hook: flood warnings first, then the derived planning tables.

    Planning tables with the same inputs are refreshed by one hook, so they can share work
    (buildings without permit and stalled permits match permits and buildings once).
    """
    from sdi.hazard.model import INPUT_TABLES as WARNING_INPUTS
    from sdi.planning.model import LAYER_INPUTS

    groups: dict[frozenset[str], list[str]] = {}
    for table, inputs in LAYER_INPUTS.items():
        groups.setdefault(inputs, []).append(table)
    return (
        AfterLoadHook("flood warnings", WARNING_INPUTS, "sdi.hazard.hooks:after_load"),
        *(
            AfterLoadHook(", ".join(tables), inputs, "sdi.planning.refresh:refresh", tuple(tables))
            for inputs, tables in groups.items()
        ),
    )


def after_load(
    conn: psycopg.Connection, table: str, run_id: int, *, changed: bool = True
) -> list[str]:
    """Run the hooks derived from ``table``; their summary lines.

    A load that changed nothing (``changed=False``: no feature added, updated or retired)
    cannot change what is derived from the warehouse, so no hook runs: a re-run of an unchanged
    delivery stays cheap. ``sdi hazard recompute`` and ``sdi planning refresh`` recompute on
    demand.
    """
    hooks = [hook for hook in registered() if table in hook.inputs]
    if not hooks or not changed:
        return []
    # The load may have replaced much of the table in this transaction, before autovacuum could
    # look at it; without fresh statistics the derived queries' plans go wrong (measured: a
    # 0.4 s refresh of the land-use conflicts took 5.7 s right after a first parcels load).
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*table.split("."))))
    summaries = (hook.run(conn, table, run_id) for hook in hooks)
    return [s for s in summaries if s]
