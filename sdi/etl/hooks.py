"""Derived data that follows a load: the registry of after-load hooks.

The runner calls :func:`after_load` at the end of a successful load, inside its transaction
(a failing hook fails the load). Packages register their hooks in the ``sdi.after_load``
entry-point group of ``pyproject.toml``; this module imports none of them, so the ETL stays
below the domain packages. How to add one: ``docs/architecture.md``, "Derived data after a load".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points

import psycopg
from psycopg import sql

from sdi.errors import ConfigError

HookFunction = Callable[..., "str | None"]

ENTRY_POINT_GROUP = "sdi.after_load"


@dataclass(frozen=True)
class AfterLoadHook:
    name: str
    inputs: frozenset[str]  # schema.table of the loads that trigger it
    function: str  # "module:function", imported on first use
    layers: tuple[str, ...] = ()  # passed on as ``layers=``: the derived tables to rebuild

    def run(self, conn: psycopg.Connection, table: str, run_id: int) -> str | None:
        module, name = self.function.split(":")
        function: HookFunction = getattr(import_module(module), name)
        if self.layers:
            return function(conn, table, run_id, layers=self.layers)
        return function(conn, table, run_id)


@cache
def registered() -> tuple[AfterLoadHook, ...]:
    """Every after-load hook of the installed packages, in the order of their entry points."""
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if not found:  # derived data would silently go stale: say how to fix the installation
        raise ConfigError(
            f"no after-load hooks are registered (entry-point group {ENTRY_POINT_GROUP}): the "
            "installed sdi package predates pyproject.toml; run `./dev setup` (pip install -e .)"
        )
    hooks: list[AfterLoadHook] = []
    for entry_point in found:
        hooks.extend(entry_point.load()())
    return tuple(hooks)


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
    # look at it; without fresh statistics the derived queries' plans go wrong (an order of
    # magnitude slower right after a first load: docs/etl-performance.md).
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*table.split("."))))
    summaries = (hook.run(conn, table, run_id) for hook in hooks)
    return [s for s in summaries if s]
