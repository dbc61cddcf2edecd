"""``sdi publish``: write pygeoapi-config.yml from layers/, or check that it is current."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from sdi.errors import ConfigError, DatabaseUnavailable, SdiError, WarehouseRefused
from sdi.layers import Layer, load_layers
from sdi.publish.config import render_config
from sdi.settings import Settings, get_settings

app = typer.Typer(help="Publish layers/ as OGC API collections.", invoke_without_command=True)
console = Console(stderr=True, soft_wrap=True)  # a message is one line, even in a pipe


def publish(check: bool = False, styles: bool = False) -> bool:
    """Write the config (or only compare with ``check``); returns True when it changed/differs.

    ``styles``: also write the layers' default QGIS styles to the warehouse (needs it).
    """
    settings = get_settings()
    layers = load_layers(settings)
    text = render_config(layers, settings)
    path = settings.pygeoapi_config
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if check:
        if current != text:
            raise ConfigError(
                f"{path.name} is stale: it does not match layers/ and the settings; "
                "run `sdi publish` and commit the result"
            )
        return False
    if current != text:
        path.write_text(text, encoding="utf-8")
    console.print(
        f"{path.name}: {'written' if current != text else 'already current'} "
        f"({text.count(chr(10))} lines)"
    )
    if styles:
        publish_styles(layers, settings)
    return current != text


def publish_styles(layers: list[Layer], settings: Settings) -> None:
    """Default QGIS styles → the warehouse's layer_styles table (sdi.publish.styles)."""
    from sdi.db import connect
    from sdi.publish.styles import write_styles

    try:
        conn = connect(settings)
    except DatabaseUnavailable as exc:
        # the config is written by then: say so, and how to publish without the warehouse
        raise type(exc)(
            f"{settings.pygeoapi_config.name} is written, but the QGIS styles are not: {exc}\n"
            "(`sdi publish --no-styles` publishes without the warehouse)"
        ) from None
    with conn:
        try:
            result = write_styles(conn, layers, settings.layers_dir)
        except psycopg.Error as exc:
            raise WarehouseRefused(
                f"writing the QGIS styles to public.layer_styles failed: {exc}".strip()
            ) from None
    removed = f", {len(result.removed)} removed ({', '.join(result.removed)})"
    console.print(
        f"QGIS styles in layer_styles{' (table created)' if result.created_table else ''}: "
        f"{len(result.written)} written, {len(result.unchanged)} unchanged"
        + (removed if result.removed else "")
    )
    for layer_id in result.not_default:
        console.print(f"  {layer_id}: a style saved by a user is the default; ours is kept as well")
    for layer_id, why in result.skipped.items():
        console.print(f"  {layer_id}: no style written ({why})")


def publish_qgis_project(path: Path, service_url: str, settings: Settings) -> None:
    """The ready QGIS project of the public collections (sdi.publish.qgis_project)."""
    from sdi.db import connect
    from sdi.publish.qgis_project import (
        project_context,
        public_layers,
        render_project,
        write_project,
    )
    from sdi.publish.styles import geometry_kinds

    layers = load_layers(settings)
    with connect(settings) as conn:
        kinds = geometry_kinds(conn, layers)
        context = project_context(conn, layers)
    write_project(path, render_project(layers, kinds, settings, service_url, context))
    missing = [layer.id for layer in public_layers(layers) if layer.id not in kinds]
    note = f" (not in the warehouse yet: {', '.join(missing)})" if missing else ""
    console.print(
        f"{path}: QGIS project of {len(public_layers(layers)) - len(missing)} layers "
        f"at {service_url}{note}"
    )


@app.callback()
def publish_command(
    check: Annotated[bool, typer.Option(help="Fail if pygeoapi-config.yml is stale")] = False,
    styles: Annotated[
        bool, typer.Option(help="Write the default QGIS styles to the warehouse's layer_styles")
    ] = True,
    qgis_project: Annotated[
        Path | None,
        typer.Option(help="Also write a QGIS project (.qgs) of the public OGC API layers here"),
    ] = None,
    service_url: Annotated[
        str | None,
        typer.Option(help="The service URL the QGIS project uses (default: SDI_PUBLIC_URL)"),
    ] = None,
) -> None:
    """Generate pygeoapi-config.yml from layers/*.yml; write the QGIS styles (and project)."""
    try:
        publish(check=check, styles=styles and not check)
        if qgis_project is not None and not check:
            settings = get_settings()
            publish_qgis_project(qgis_project, service_url or settings.server_url, settings)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
