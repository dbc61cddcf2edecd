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
from sdi.sql import one as sdi_one

HookFunction = Callable[..., "str | None"]

ENTRY_POINT_GROUP = "sdi.after_load"


@dataclass(frozen=True)
class AfterLoadHook:
    name: str
    inputs: frozenset[str]  # schema.table of the loads that trigger it
    function: str  # "module:function", imported on first use
    layers: tuple[str, ...] = ()  # passed on as ``layers=``: the derived tables to rebuild
    # passed the communes the load touched as ``communes=`` (None: unknown, rebuild whole)
    scoped: bool = False

    def run(
        self,
        conn: psycopg.Connection,
        table: str,
        run_id: int,
        communes: frozenset[str] | None = None,
    ) -> str | None:
        module, name = self.function.split(":")
        function: HookFunction = getattr(import_module(module), name)
        kwargs: dict[str, object] = {"layers": self.layers} if self.layers else {}
        if self.scoped:
            kwargs["communes"] = communes
        return function(conn, table, run_id, **kwargs)


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


def _to_analyze(
    conn: psycopg.Connection, table: str, run_id: int, communes: frozenset[str] | None
) -> list[str]:
    """The table, or of a table partitioned by province the partitions this run wrote:
    ANALYZE of the parent samples every province's partition, which a national warehouse
    would pay at each province's load."""
    partitioned = sdi_one(
        conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))",
            (table,),
        )
    )[0]
    if not partitioned or communes is None:
        return [table]
    written = conn.execute(
        sql.SQL("SELECT DISTINCT tableoid::regclass::text FROM {} WHERE run_id = %s").format(
            sql.Identifier(*table.split("."))
        ),
        (run_id,),
    ).fetchall()
    never = sdi_one(
        conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = %s AND tablename = %s)",
            tuple(table.split(".", 1)),
        )
    )[0]
    # the parent's own statistics (autovacuum never makes them): once, on the first load
    return [r[0] for r in written] + ([table] if never else [])


def analyze(conn: psycopg.Connection, relation: str) -> None:
    """``ANALYZE relation`` as its owner when the connection's role does not own it (the ETL
    role: ``etl.analyze``, migration 0012d), else directly."""
    from sdi.db.roles import asks_owner

    if asks_owner(conn, relation, "etl.analyze(regclass)"):
        conn.execute("SELECT etl.analyze(%s::regclass)", (relation,))
    else:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(*relation.split("."))))


def after_load(
    conn: psycopg.Connection,
    table: str,
    run_id: int,
    *,
    changed: bool = True,
    communes: frozenset[str] | None = None,
) -> list[str]:
    """Run the hooks derived from ``table``; their summary lines.

    A load that changed nothing (``changed=False``: no feature added, updated or retired)
    cannot change what is derived from the warehouse, so no hook runs: a re-run of an unchanged
    delivery stays cheap. ``sdi hazard recompute`` and ``sdi planning refresh`` recompute on
    demand. ``communes``: those whose features the load touched (hooks registered ``scoped``
    refresh only what derives from them; None: unknown).
    """
    hooks = [hook for hook in registered() if table in hook.inputs]
    if not hooks or not changed:
        return []
    # The load may have replaced much of the table in this transaction, before autovacuum could
    # look at it; without fresh statistics the derived queries' plans go wrong (an order of
    # magnitude slower right after a first load: docs/etl-performance.md).
    for relation in _to_analyze(conn, table, run_id, communes):
        analyze(conn, relation)
    summaries = (hook.run(conn, table, run_id, communes) for hook in hooks)
    return [s for s in summaries if s]
