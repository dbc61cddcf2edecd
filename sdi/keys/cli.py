"""``sdi keys``: issue, list and revoke the API keys that open internal layers and let
authorised apps write to editable collections (``--write incidents``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sdi.db import connect, ensure_database
from sdi.errors import SdiError
from sdi.keys import (
    ADMIN,
    CACHE_TTL,
    create_key,
    list_keys,
    normalise_department,
    revoke_key,
)
from sdi.settings import get_settings

app = typer.Typer(
    help="API keys for internal layers (sent by clients as the X-API-Key header).",
    no_args_is_help=True,
)
console = Console(stderr=True)
report_console = Console(width=None if sys.stdout.isatty() else 200)


def _connection():
    settings = get_settings()
    ensure_database(settings)
    return connect(settings)


def _editable_layers() -> set[str]:
    from sdi.layers import load_layers

    try:
        return {layer.id for layer in load_layers() if layer.editable}
    except SdiError:
        return set()


def _departments_in_layers() -> set[str]:
    from sdi.layers import load_layers

    try:
        return {normalise_department(d) for layer in load_layers() for d in layer.departments}
    except SdiError:
        return set()


@app.command("create")
def create_command(
    department: Annotated[
        str,
        typer.Option(help="Department of the key, as layers name it in `departments`; '*' = admin"),
    ],
    name: Annotated[str, typer.Option(help="Who uses it, e.g. 'QGIS of the planning office'")],
    write: Annotated[
        list[str] | None,
        typer.Option(
            "--write",
            metavar="COLLECTION",
            help="A collection the key may write to (OGC API Features Part 4), e.g. incidents; "
            "repeat for several",
        ),
    ] = None,
) -> None:
    """Create a key and print it (only this once: it is stored hashed)."""
    try:
        with _connection() as conn:
            record, key = create_key(conn, department, name, write or ())
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    who = "administrator (every layer, writes)" if record.department == ADMIN else record.department
    console.print(f"created key [bold]{record.key_id}[/] for {who}: {record.name}")
    if record.writes:
        console.print(f"it may write to: {', '.join(record.writes)}")
        not_editable = sorted(set(record.writes) - _editable_layers())
        if not_editable:
            console.print(
                f"[yellow]note:[/] {', '.join(not_editable)}: no layer with `editable:` by that "
                "id in layers/; writes there are refused until one exists"
            )
    if record.department != ADMIN and record.department not in _departments_in_layers():
        console.print(
            f"[yellow]note:[/] no layer lists department {record.department!r} in `departments`; "
            "the key opens only internal layers without a departments list"
        )
    console.print(
        "Give it to the client as the HTTP header X-API-Key; it is not shown again. "
        f"Revoke with `sdi keys revoke {record.key_id}`."
    )
    print(key)


@app.command("list")
def list_command(
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked")] = False,
) -> None:
    """The keys issued: id, department, name, when created and revoked (never the keys)."""
    try:
        with _connection() as conn:
            keys = list_keys(conn, include_revoked=not active)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    table = Table("id", "department", "name", "writes", "created", "by", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.department,
            k.name,
            "everything" if k.department == ADMIN else ", ".join(k.writes),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            k.created_by,
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    report_console.print(table)


@app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (`sdi keys list`)")],
) -> None:
    """Revoke a key: the API refuses it within a few seconds."""
    try:
        with _connection() as conn:
            record = revoke_key(conn, key_id)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    console.print(
        f"revoked key {record.key_id} ({record.department}: {record.name}); "
        f"every server worker refuses it within {CACHE_TTL:g} s"
    )
