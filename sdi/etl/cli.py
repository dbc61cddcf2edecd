"""``sdi etl``: run refresh jobs and look at what they did."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from sdi.db import connect, ensure_database
from sdi.errors import ConfigError, SdiError
from sdi.etl.spec import discover_jobs, load_job, resolve_jobs
from sdi.settings import get_settings

if TYPE_CHECKING:
    from rich.progress import TaskID

    from sdi.etl.results import RunResult

# The runner, progress bars and tables are imported in the commands that use them: the
# timer's `sdi etl run --changed` with nothing to do exits before needing any of them.

app = typer.Typer(help="Load department deliveries into the warehouse.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)  # a message is one line, even in a pipe
# Tables go to stdout; when it is a pipe or file, do not squeeze them into 80 columns.


def run_jobs(
    names: list[str],
    *,
    force: bool = False,
    dry_run: bool = False,
    show_progress: bool = True,
    keep_going: bool = False,
) -> list[RunResult]:
    """Run jobs in order; the first failure stops the sequence and is raised — or, with
    ``keep_going``, is reported and the other jobs run, and :class:`JobsFailed` listing every
    failure (a spec that does not load, a delivery refused) is raised at the end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sdi.etl.runner import run_job

    settings = get_settings()
    url = ensure_database(settings)
    if keep_going:
        return _run_each(names, force=force, dry_run=dry_run, url=url)
    jobs = resolve_jobs(names, settings)
    results = []
    with Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress or not console.is_terminal,
    ) as bar:
        for job in jobs:
            task = bar.add_task(job.name, total=None)

            def on_start(total: int | None, task: TaskID = task) -> Callable[[int], None]:
                bar.update(task, total=total)
                return lambda n: bar.advance(task, n)

            result = run_job(
                job, url, force=force, dry_run=dry_run, settings=settings, on_start=on_start
            )
            bar.update(task, completed=result.rows_read, total=result.rows_read or 1)
            results.append(result)
            _print_result(result)
    return results


class JobsFailed(SdiError):
    """Some jobs of a sequence failed (each was reported); the others ran."""

    def __init__(self, failures: dict[str, SdiError]) -> None:
        self.failures = failures
        codes = {e.exit_code for e in failures.values()}
        self.exit_code = codes.pop() if len(codes) == 1 else 1
        super().__init__(
            f"{len(failures)} job(s) failed: {', '.join(failures)} (see the messages above); "
            "the other jobs ran"
        )


def _run_each(names: list[str], *, force: bool, dry_run: bool, url: str) -> list[RunResult]:
    from sdi.etl.runner import run_job

    settings = get_settings()
    known = discover_jobs(settings)
    results, failures = [], {}
    for name in names:
        try:
            if name not in known:
                raise ConfigError(f"unknown job {name!r} (no {name}.yml in {settings.jobs_dir})")
            job = load_job(known[name], settings)
            result = run_job(job, url, force=force, dry_run=dry_run, settings=settings)
        except SdiError as exc:
            console.print(f"[red]{name}: error:[/] {exc}")
            failures[name] = exc
            continue
        results.append(result)
        _print_result(result)
    if failures:
        raise JobsFailed(failures)
    return results


def _print_result(r: RunResult) -> None:
    c = r.counts
    if r.status == "skipped":
        console.print(f"[dim]{r.job}: skipped — {r.message}[/]")
        return
    console.print(
        f"[green]{r.job}[/] run {r.run_id}: {r.rows_read} read, {c.added} added, "
        f"{c.updated} updated, {c.unchanged} unchanged, {c.retired} retired, "
        f"{r.rejected} rejected, {r.repaired} repaired" + (f" — {r.message}" if r.message else "")
    )
    if r.encoding_report:
        console.print(f"  [dim]text encoding detected: {r.encoding_report}[/]")


@app.command("run")
def run_command(
    jobs: Annotated[list[str] | None, typer.Argument(help="Job names (files in etl/jobs/)")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Run every job in etl/jobs/")] = False,
    force: Annotated[bool, typer.Option(help="Reload even if the sources are unchanged")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Validate and count changes; write nothing")
    ] = False,
    changed: Annotated[
        bool,
        typer.Option(
            "--changed",
            help="Run the jobs whose spec or delivered files changed since their last run "
            "(what the systemd timer in deploy/systemd/ runs every few minutes)",
        ),
    ] = False,
) -> None:
    """Run ETL jobs: read, decode, reproject, validate, stage and merge — all or nothing.

    With --all or --changed a job that fails is reported and the others still run; the
    command exits non-zero at the end."""
    try:
        if changed:
            names = _changed_names()
            if not names:
                return
        else:
            names = list(discover_jobs()) if all_jobs else (jobs or [])
        if not names:
            raise typer.BadParameter("name one or more jobs, or use --all (see `sdi etl list`)")
        run_jobs(names, force=force, dry_run=dry_run, keep_going=all_jobs or changed)
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None


def _changed_names() -> list[str]:
    """The jobs to run for ``--changed``, each decision printed (dim when nothing to do)."""
    from sdi.etl.inbox import changed_jobs

    with connect() as conn:
        pending = changed_jobs(conn)
    for p in pending:
        console.print(f"{p.job}: {p.reason}" if p.run else f"[dim]{p.job}: {p.reason}[/]")
    return [p.job for p in pending if p.run]


@app.command("list")
def list_command() -> None:
    """The job specs in etl/jobs/ and what they load."""
    from rich.table import Table

    from sdi.cli_support import report_console

    table = Table("job", "title", "source", "target", "mode")
    for name, path in discover_jobs().items():
        try:
            job = load_job(path)
            table.add_row(name, job.title, job.source.path, job.table, job.mode)
        except SdiError as exc:
            table.add_row(name, f"[red]{exc}[/]", "", "", "")
    report_console.print(table)


@app.command("runs")
def runs_command(
    limit: Annotated[int, typer.Option(help="How many runs")] = 20,
    job: Annotated[str | None, typer.Option(help="Only this job")] = None,
) -> None:
    """Recent runs with their counts."""
    from sdi.cli_support import print_rows

    with connect() as conn:
        rows = conn.execute(
            """
            SELECT run_id, job, status, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),
                   round(extract(epoch FROM finished_at - started_at)::numeric, 1),
                   rows_read, added, updated, unchanged, retired, rejected, repaired, message
            FROM etl.runs WHERE %(job)s::text IS NULL OR job = %(job)s
            ORDER BY run_id DESC LIMIT %(limit)s
            """,
            {"job": job, "limit": limit},
        ).fetchall()
    print_rows(
        (
            "run",
            "job",
            "status",
            "started",
            "s",
            "read",
            "added",
            "updated",
            "unchanged",
            "retired",
            "rejected",
            "repaired",
            "message",
        ),
        rows,
    )


@app.command("report")
def report_command(
    run_id: Annotated[int, typer.Argument(help="Run id (see `sdi etl runs`)")],
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write the rejects to CSV")] = None,
    html_path: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write one self-contained page: counts per reason, a map of rejected and "
            "repaired rows beside the accepted ones, detection evidence, changes per commune",
        ),
    ] = None,
) -> None:
    """The rows a run rejected, with source file, row number and reason."""
    import csv

    from rich.table import Table

    from sdi.cli_support import report_console

    if html_path:
        from sdi.etl.report_html import html_report

        try:
            with connect() as conn:
                page = html_report(conn, run_id)
        except SdiError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(exc.exit_code) from None
        html_path.write_text(page, encoding="utf-8")
        console.print(f"wrote {html_path} ({len(page) // 1024} KiB)")
        return
    with connect() as conn:
        rows = conn.execute(
            "SELECT source_path, row_number, natural_key, reason, raw::text FROM etl.rejects "
            "WHERE run_id = %s ORDER BY source_path, row_number",
            (run_id,),
        ).fetchall()
    if csv_path:
        with sys.stdout if str(csv_path) == "-" else csv_path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["source_path", "row_number", "natural_key", "reason", "raw"])
            writer.writerows(rows)
        return
    table = Table("file", "row", "key", "reason")
    for path, row, key, reason, _ in rows:
        table.add_row(Path(path).name, str(row), key or "", reason)
    report_console.print(table)
    console.print(f"{len(rows)} rejected rows in run {run_id}")
