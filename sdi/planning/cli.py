"""``sdi planning``: rebuild the derived planning and operations layers, and see their state."""

from __future__ import annotations

from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from sdi.cli_support import recorded_run
from sdi.db import connect
from sdi.errors import SdiError

app = typer.Typer(
    help="Derived planning layers and operations-centre summaries (docs/planning.md).",
    no_args_is_help=True,
)
console = Console(stderr=True, soft_wrap=True)  # a message is one line, even in a pipe

REFRESH_JOB = "planning_refresh"


@app.command("refresh")
def refresh_command(
    layer: Annotated[
        list[str] | None,
        typer.Option(
            "--layer",
            "-l",
            help="A derived table to rebuild (repeatable), e.g. planning.land_use_conflicts; "
            "default: all",
        ),
    ] = None,
) -> None:
    """Rebuild the derived layers now (every ETL load of one of their inputs already does).

    Recorded as a run of its own (job planning_refresh), the lineage of the rows it writes.
    Run it after editing etl/codes/zoning_compatibility.yml, or from cron to age the
    open-incident bands of the operations summary.
    """
    from sdi.planning.model import LAYER_INPUTS
    from sdi.planning.refresh import refresh

    unknown = [t for t in layer or [] if t not in LAYER_INPUTS]
    if unknown:
        console.print(
            f"[red]error:[/] unknown layer {', '.join(unknown)}; "
            f"choose from: {', '.join(LAYER_INPUTS)}"
        )
        raise typer.Exit(2)
    try:
        run_id, result = recorded_run(
            REFRESH_JOB,
            lambda conn, run_id: refresh(
                conn, run_id=run_id, trigger="manual", layers=layer or None
            ),
        )
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    except psycopg.Error as exc:
        console.print(f"[red]error:[/] the warehouse refused the refresh: {exc}")
        raise typer.Exit(8) from None
    if result.skipped:
        console.print(f"[yellow]nothing refreshed:[/] {result.skipped} (run `sdi db upgrade`)")
        raise typer.Exit(1)
    table = Table("derived table", "rows", "seconds", title=f"run {run_id}")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}", f"{result.seconds[name]:.2f}")
    Console().print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


@app.command("status")
def status_command() -> None:
    """The last refresh of each derived table: when, why, rows and time."""
    try:
        with connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (layer) layer, refreshed_at, trigger, run_id, rows, "
                "duration_ms FROM planning.refreshes "
                "ORDER BY layer, refreshed_at DESC, refresh_id DESC"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        console.print("[red]error:[/] the warehouse has no planning layers yet: `sdi db upgrade`")
        raise typer.Exit(1) from None
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    table = Table("derived table", "refreshed at", "trigger", "run", "rows", "ms")
    for layer, at, trigger, run_id, n, ms in rows:
        table.add_row(
            layer, f"{at:%Y-%m-%d %H:%M:%S}", trigger, str(run_id or ""), f"{n:,}", f"{ms:.0f}"
        )
    Console().print(table)
