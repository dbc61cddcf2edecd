"""The ``sdi`` command: one entry point for the database, the ETL, publishing and serving."""

from __future__ import annotations

import importlib
import json
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from sdi.db import ensure_database
from sdi.db.cli import app as db_app
from sdi.errors import SdiError
from sdi.settings import get_settings

if TYPE_CHECKING:
    from typer._click import Command, Context  # typer vendors its own click

# The command groups of other packages, imported only when one of them is called (or listed
# in --help): every command is a new process, and the systemd timer's `sdi etl run --changed`
# must not pay for the scaffold's pandas or the server's pygeoapi (issue 12: under 1 s).
LAZY_GROUPS = {
    "etl": "sdi.etl.cli",
    "publish": "sdi.publish.cli",
    "hazard": "sdi.hazard.cli",
    "keys": "sdi.keys.cli",
    "planning": "sdi.planning.cli",
    "table": "sdi.etl.declared",
    "layer": "sdi.etl.scaffold",
}


class LazyGroup(TyperGroup):
    """The ``sdi`` group: :data:`LAZY_GROUPS` are imported when asked for, by name."""

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in LAZY_GROUPS and cmd_name not in self.commands:
            module = importlib.import_module(LAZY_GROUPS[cmd_name])
            group = typer.main.get_group(module.app)
            group.name = cmd_name
            self.add_command(group, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except typer._click.exceptions.UsageError as exc:
            # typer suggests among the groups imported so far: suggest among them all
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches and "Did you mean" not in exc.message:
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {matches[0]!r}?"
            raise


app = typer.Typer(
    help="Urban spatial data infrastructure: department files → ETL → PostGIS → OGC API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=LazyGroup,
)
app.add_typer(db_app, name="db")
console = Console(stderr=True, soft_wrap=True)  # a message is one line, even in a pipe
sample_app = typer.Typer(
    help="Sample data of four cities for demos and benchmarks.", no_args_is_help=True
)
app.add_typer(sample_app, name="sample")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the warehouse schema (Alembic migrations; a no-op when current)."""
    from sdi.db.migrate import upgrade

    before, after = upgrade(ensure_database())
    console.print(
        f"warehouse schema: {before or 'empty'} → {after}"
        + (" (already current)" if before == after else "")
    )


@sample_app.command("generate")
def sample_generate(
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default SDI_SAMPLES_DIR, etl/samples)")
    ] = None,
    scale: Annotated[
        float,
        typer.Option(help="Multiplies parcels, buildings, permits (41.67 ≈ 1,000,000 parcels)"),
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data")] = 2025,
    parcels_format: Annotated[
        str, typer.Option(help="shp (per city, TCVN3) or gpkg (one file)")
    ] = "shp",
    provinces: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=34,
            help="Write a nation instead: N provinces (communes, parcels per province, zoning; "
            "sdi/samples/nation.py)",
        ),
    ] = None,
    parcels: Annotated[
        int, typer.Option(min=1, help="With --provinces: parcels in all, shared by population")
    ] = 1_000_000,
) -> None:
    """Write the sample deliveries of Hạ Long, Uông Bí, Cẩm Phả and Móng Cái (or, with
    --provinces, of a nation)."""
    if provinces is not None:
        from sdi.samples.nation import generate_nation

        if out is None:
            raise typer.BadParameter("give --out: a nation is not the demo's sample folder")
        made = generate_nation(
            out,
            provinces=provinces,
            parcels=parcels,
            seed=seed,
            progress=lambda msg: console.print(f"  {msg}"),
        )
        console.print(
            f"[green]wrote {made['parcels']:,} parcels of {provinces} province(s) to {out}[/]"
        )
        return
    from sdi.samples import generate  # heavy imports only when generating

    out = out or get_settings().samples_dir
    manifest = generate(
        out,
        scale=scale,
        seed=seed,
        parcels_format=parcels_format,
        progress=lambda msg: console.print(f"  {msg}"),
    )
    features = sum(f["rows"] for name, f in manifest["files"].items() if not name.endswith(".tif"))
    console.print(
        f"[green]wrote {len(manifest['files'])} files ({features:,} features and rows, "
        f"plus rasters) to {out}[/]"
    )
    settings = get_settings()
    if out.resolve() == settings.samples_dir.resolve():
        from sdi.etl.inbox import link_samples

        linked = link_samples(settings)
        if linked:
            console.print(f"  linked into the inbox {settings.source_dir}: {', '.join(linked)}")


def _samples_current(out: Path, scale: float) -> bool:
    manifest = out / "manifest.json"
    if not manifest.exists():
        return False
    from sdi.samples import GENERATOR_VERSION

    data = json.loads(manifest.read_text())
    return (
        data.get("scale") == scale
        and data.get("generator_version") == GENERATOR_VERSION
        and all((out / f).exists() for f in data["files"])
    )


@app.command()
def up(
    scale: Annotated[float, typer.Option(help="Sample data scale")] = 1.0,
    serve: Annotated[bool, typer.Option(help="Start the OGC API server at the end")] = True,
) -> None:
    """The main job: database, migrations, sample data, ETL, publishing, and the OGC API."""
    from sdi.db.migrate import upgrade
    from sdi.etl.cli import JobsFailed, run_jobs
    from sdi.etl.declared import sync as sync_tables
    from sdi.etl.inbox import link_samples
    from sdi.etl.spec import discover_jobs
    from sdi.publish.cli import publish, publish_qgis_project
    from sdi.serve import Server

    settings = get_settings()
    failed: JobsFailed | None = None
    try:
        url = ensure_database(settings)
        console.print("[bold]==> warehouse schema[/]")
        for written in sync_tables(settings).written:  # tables declared in job specs
            console.print(f"    {written.table.qualified}: wrote {written.path.name}")
        before, after = upgrade(url, settings)
        console.print(f"    {before or 'empty'} → {after}")
        if not _samples_current(settings.samples_dir, scale):
            console.print("[bold]==> generating sample data of four cities[/]")
            sample_generate(out=settings.samples_dir, scale=scale)
        linked = link_samples(settings)
        if linked:
            console.print(
                f"    inbox {settings.source_dir}: sample folders linked for "
                f"{', '.join(linked)} (a real delivery folder there takes their place)"
            )
        console.print("[bold]==> ETL: loading every job in etl/jobs/[/]")
        try:
            # A broken spec or a refused delivery is reported; the other jobs still load.
            run_jobs(list(discover_jobs(settings)), keep_going=True)
        except JobsFailed as exc:
            failed = exc
            console.print(f"[red]error:[/] {exc}")
        console.print("[bold]==> publishing layers/ → pygeoapi-config.yml, QGIS styles[/]")
        publish(styles=True)  # also the default QGIS styles in the warehouse
        project = settings.state_dir / "sdi.qgs"
        publish_qgis_project(project, settings.server_url, settings)
        if serve:
            console.print("[bold]==> serving the OGC API[/]")
            Server(settings).restart()
            console.print(
                f"[green bold]OGC API ready: {settings.server_url}/[/]  "
                f"(collections: {settings.server_url}/collections; "
                f"stop with `./dev sdi serve stop`)"
            )
            console.print(f"QGIS project of the published layers: {project}")
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    if failed is not None:
        console.print(f"[red]finished with errors:[/] {failed}")
        raise typer.Exit(failed.exit_code)


@app.command("serve")
def serve_command(
    action: Annotated[
        str, typer.Argument(help="start | stop | restart | status | foreground")
    ] = "start",
    instances: Annotated[
        int | None,
        typer.Option(min=1, help="API instances behind HAProxy on SDI_PORT (SDI_INSTANCES)"),
    ] = None,
) -> None:
    """Run the OGC API (pygeoapi under gunicorn + uvicorn workers) on SDI_HOST:SDI_PORT."""
    from sdi.serve import Server

    settings = get_settings()
    if instances is not None:
        settings = settings.model_copy(update={"instances": instances})
    server = Server(settings)
    try:
        match action:
            case "start":
                server.start()
            case "restart":
                server.restart()
            case "stop":
                server.stop()
            case "status":
                console.print(server.status())
            case "foreground":
                server.run_foreground()
            case _:
                raise typer.BadParameter(f"unknown action {action!r}")
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None


@app.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once (default SDI_WORKER_CONCURRENCY)")
    ] = None,
    once: Annotated[
        bool, typer.Option(help="Run what is queued, then stop (housekeeping included)")
    ] = False,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only these queues: processes, etl, housekeeping")
    ] = None,
) -> None:
    """Run queued jobs (async processes, ETL runs, housekeeping) until stopped; any number of
    workers, on any machine that reaches the database."""
    import logging

    from sdi.jobs.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        run(concurrency=concurrency, once=once, queues=queue)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        pass


def main() -> None:
    app()
