"""``sdi publish``: write pygeoapi-config.yml from layers/, or check that it is current."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from sdi.errors import ConfigError, SdiError
from sdi.publish.config import render_config
from sdi.publish.layers import load_layers
from sdi.settings import get_settings

app = typer.Typer(help="Publish layers/ as OGC API collections.", invoke_without_command=True)
console = Console(stderr=True)


def publish(check: bool = False) -> bool:
    """Write the config (or only compare with ``check``); returns True when it changed/differs."""
    settings = get_settings()
    text = render_config(load_layers(settings), settings)
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
    return current != text


@app.callback()
def publish_command(
    check: Annotated[bool, typer.Option(help="Fail if pygeoapi-config.yml is stale")] = False,
) -> None:
    """Generate pygeoapi-config.yml from layers/*.yml."""
    try:
        publish(check=check)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
