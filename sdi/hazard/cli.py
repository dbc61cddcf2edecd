"""``sdi hazard``: the flood warnings and the disaster risk levels — what is active, what
happened, and a manual recompute."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

import sdi.sql
from sdi.cli_support import print_rows, recorded_run, report_console
from sdi.db import connect
from sdi.errors import SdiError

app = typer.Typer(help="Flood warnings derived from gauge readings.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # a message is one line, even in a pipe

RECOMPUTE_JOB = "hazard_warnings_recompute"
PACKAGE = "sdi.hazard"  # its sql/ folder holds the reports' queries


@app.command("recompute")
def recompute_command() -> None:
    """Recompute the warnings now (loads of readings and exposed layers already do it).

    Recorded as a run of its own (job hazard_warnings_recompute), the lineage of any change.
    """
    from sdi.hazard.warnings import recompute

    try:
        run_id, result = recorded_run(RECOMPUTE_JOB, recompute)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    console.print(f"run {run_id}: {result.summary()} in {result.seconds:.2f} s")


@app.command("warnings")
def warnings_command() -> None:
    """The active warnings, highest level first."""
    with connect() as conn:
        rows = conn.execute(sdi.sql.load(PACKAGE, "warnings_current")).fetchall()
    print_rows(
        (
            "gauge",
            "name",
            "level",
            "water m",
            "reading",
            "level since",
            "zones",
            "buildings",
            "residents≈",
            "parcels",
            "facilities",
            "lamps",
            "pipes m",
            "cameras",
        ),
        rows,
    )
    console.print(f"{len(rows)} active warning(s)")


@app.command("history")
def history_command(
    gauge: Annotated[str | None, typer.Option(help="Only this gauge")] = None,
    limit: Annotated[int, typer.Option(help="How many events")] = 20,
) -> None:
    """Raises, escalations, de-escalations and clears, newest first."""
    with connect() as conn:
        rows = conn.execute(
            sdi.sql.load(PACKAGE, "warning_events"), {"gauge": gauge, "limit": limit}
        ).fetchall()
    print_rows(
        (
            "event",
            "recorded",
            "gauge",
            "what",
            "levels",
            "water m",
            "reading",
            "buildings",
            "residents≈",
            "run",
            "reason",
        ),
        rows,
    )


@app.command("exposure")
def exposure_command(
    gauge: Annotated[str | None, typer.Option(help="A gauge code, e.g. G-HL-01")] = None,
    water_level: Annotated[
        float | None, typer.Option("--water-level", help="Hypothetical level (m), with --gauge")
    ] = None,
    area: Annotated[
        str | None, typer.Option(help="A GeoJSON file: a Polygon/MultiPolygon (or a Feature)")
    ] = None,
) -> None:
    """What a gauge at a water level, or an area, exposes (the OGC API process "exposure")."""
    import json
    from pathlib import Path

    from sdi.hazard.exposure import checked_inputs, exposure

    inputs: dict = {}
    try:
        if area is not None:
            inputs["area"] = json.loads(Path(area).read_text(encoding="utf-8"))
        if gauge is not None:
            inputs["gauge"] = gauge
        if water_level is not None:
            inputs["water_level_m"] = water_level
        checked = checked_inputs(inputs)
        with connect(autocommit=True) as conn:
            result = exposure(conn, checked)
    except (OSError, ValueError) as exc:  # a bad file or input: say which
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    report_console.print_json(json.dumps(result["properties"], default=str))


RISK_RECOMPUTE_JOB = "hazard_risk_recompute"


@app.command("risk-recompute")
def risk_recompute_command() -> None:
    """Recompute the disaster risk levels now (loads of rainfall, bulletins, readings and
    exposed layers already do it). Recorded as a run of job hazard_risk_recompute."""
    from sdi.hazard.risk import recompute

    try:
        run_id, result = recorded_run(RISK_RECOMPUTE_JOB, recompute)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    console.print(f"run {run_id}: {result.summary()} in {result.seconds:.2f} s")


@app.command("risk")
def risk_command() -> None:
    """The active disaster risk levels (Decision 18/2021/QĐ-TTg), highest first, and the
    combined level per commune."""
    with connect() as conn:
        print_rows(
            ("hazard", "area", "level", "article", "since", "residents"),
            conn.execute(sdi.sql.load(PACKAGE, "risk_current")).fetchall(),
        )
        print_rows(
            ("commune", "combined level", "raised by", "hazards"),
            conn.execute(sdi.sql.load(PACKAGE, "risk_combined_current")).fetchall(),
        )
