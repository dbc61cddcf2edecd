"""``sdi table sync``: the tables job specs declare become generated Alembic revisions.

A job spec whose ``target`` has ``geometry`` and ``columns`` declares its table. ``sync`` compares
every declaration with the state the generated revisions in ``schemas/migrations/versions/``
leave it in (:func:`sdi.db.tables.declared_state`) and writes the next revision for each one
that is new or grew; ``sdi db upgrade`` (or ``sdi table sync --apply``) applies them. The DDL
is :mod:`sdi.db.tables`', the function the built-in tables use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sdi.db.tables import FeatureTable, Written, sync_declared
from sdi.errors import ConfigError, SdiError
from sdi.etl.spec import discover_jobs, load_job
from sdi.settings import Settings, get_settings

console = Console(stderr=True, highlight=False, soft_wrap=True)
app = typer.Typer(
    help="Tables declared in job specs (target.geometry + target.columns) → Alembic revisions.",
    no_args_is_help=True,
)


def versions_dir(settings: Settings) -> Path:
    return settings.home / "schemas" / "migrations" / "versions"


@dataclass
class SyncResult:
    written: list[Written] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # broken specs, skipped


def declared_tables(settings: Settings) -> tuple[dict[str, tuple[FeatureTable, str]], list[str]]:
    """Qualified name → (declaration, spec file) of every job that declares its table, and the
    problems of the specs that could not be read (they are skipped, not fatal)."""
    tables: dict[str, tuple[FeatureTable, str]] = {}
    problems: list[str] = []
    for name, path in discover_jobs(settings).items():
        try:
            job = load_job(path, settings)
        except SdiError as exc:
            problems.append(str(exc))
            continue
        if job.declared is None:
            continue
        source = f"etl/jobs/{path.name}"
        other = tables.get(job.declared.qualified)
        if other is not None and other[0] != job.declared:
            problems.append(
                f"{path}: declares {job.declared.qualified} differently from {other[1]}; "
                "jobs feeding one table must declare the same columns (or only one declares it)"
            )
            continue
        tables.setdefault(job.declared.qualified, (job.declared, source))
        _ = name
    return tables, problems


def _hand_written(qualified: str, directory: Path) -> str | None:
    """The hand-written migration that creates ``qualified``, if any (declaring a built-in
    table's columns would create it twice)."""
    pattern = re.compile(rf"[\"']{re.escape(qualified)}[\"']|CREATE TABLE {re.escape(qualified)}\b")
    for path in sorted(directory.glob("[0-9]*.py")):
        if pattern.search(path.read_text(encoding="utf-8")):
            return path.name
    return None


def sync(settings: Settings | None = None, *, write: bool = True) -> SyncResult:
    """Write the revisions the declarations need (``write=False``: only say which)."""
    from alembic.util.exc import CommandError

    from sdi.db.migrate import head_revision

    settings = settings or get_settings()
    directory = versions_dir(settings)
    tables, problems = declared_tables(settings)
    for qualified in list(tables):
        owner = _hand_written(qualified, directory)
        if owner is not None:
            problems.append(
                f"{tables[qualified][1]}: {qualified} is created by the hand-written migration "
                f"{owner}: remove target.geometry/columns (declare only new tables)"
            )
            del tables[qualified]
    try:
        head = head_revision(settings)
    except CommandError as exc:
        raise ConfigError(
            f"schemas/migrations has several heads ({exc}); chain the newest revisions "
            "(down_revision) into one line first"
        ) from None
    result = SyncResult(problems=problems)
    result.written = sync_declared(tables, directory, head, write=write)
    return result


@app.command("sync")
def sync_command(
    check: Annotated[
        bool, typer.Option(help="Write nothing; exit 1 when a declared table needs a revision")
    ] = False,
    apply: Annotated[bool, typer.Option(help="Then apply them (sdi db upgrade)")] = False,
) -> None:
    """Write the Alembic revision of every declared table that is new or changed."""
    settings = get_settings()
    try:
        result = sync(settings, write=not check)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    for problem in result.problems:
        console.print(f"[red]error:[/] {problem}")
    verb = "needs" if check else "wrote"
    for w in result.written:
        home = settings.home
        where = w.path.relative_to(home) if w.path.is_relative_to(home) else w.path
        console.print(f"{w.table.qualified}: {verb} {where} ({w.change})")
    if not result.written:
        console.print("declared tables: every one has its revision")
    if apply and not check:
        from sdi.db import ensure_database
        from sdi.db.migrate import upgrade

        try:
            before, after = upgrade(ensure_database(settings), settings)
        except SdiError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exc.exit_code) from None
        console.print(f"warehouse schema: {before or 'empty'} → {after}")
    if result.problems:
        raise typer.Exit(2)
    if check and result.written:
        raise typer.Exit(1)
