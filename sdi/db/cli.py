"""``sdi db …``: start, stop and inspect the project's PostGIS database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from sdi.db import ClusterError, LocalCluster, database_url, ensure_database, mask_url
from sdi.settings import get_settings

if TYPE_CHECKING:
    from sdi.db.replica import Replica

app = typer.Typer(
    help=(
        "The PostGIS database: the project's own local cluster (under .sdi/pg, on "
        "127.0.0.1 only), or the existing one named by SDI_DATABASE_URL."
    ),
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True)


def _fail(exc: Exception) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(getattr(exc, "exit_code", 1))


@app.command()
def start(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server")] = 60.0,
) -> None:
    """Start the local cluster and wait until it accepts connections.

    The first start creates the cluster, the database and its PostGIS extensions. With
    SDI_DATABASE_URL set, only checks that that database answers and has PostGIS.
    """
    settings = get_settings()
    try:
        if settings.database_url:
            url = ensure_database(settings)
            console.print(
                f"Using SDI_DATABASE_URL [bold]{mask_url(url)}[/]: it answers and has PostGIS. "
                "The local cluster is not used.",
                highlight=False,
            )
            return
        cluster = LocalCluster(settings)
        started = cluster.start(timeout=timeout)
        cluster.ensure_database(settings.db_name)
        url = cluster.url(settings.db_name)
        from sdi.db import connect
        from sdi.db.roles import apply_grants

        with connect(settings, autocommit=True) as conn:  # the API and ETL roles
            apply_grants(conn, settings)
        from sdi.db.replica import replicas

        for standby in replicas(cluster):  # its hot standbys too (`sdi db replica add`)
            if standby.start(timeout=timeout):
                console.print(f"Replica {standby.name} started on port {standby.port}.")
    except ClusterError as exc:
        raise _fail(exc) from exc
    state = "started" if started else "already running"
    console.print(
        f"PostgreSQL {state}: [bold]{mask_url(url)}[/] (full URL: `sdi db url`)", highlight=False
    )
    if cluster.status().note:
        console.print(f"Note: {cluster.status().note}", highlight=False)


@app.command()
def stop() -> None:
    """Stop the local cluster (fast shutdown: open sessions are rolled back)."""
    settings = get_settings()
    if settings.database_url:
        console.print("SDI_DATABASE_URL is set: there is no local cluster to stop.")
        return
    try:
        from sdi.db.replica import replicas

        cluster = LocalCluster(settings)
        for standby in replicas(cluster):
            standby.stop()
        stopped = cluster.stop()
    except ClusterError as exc:
        raise _fail(exc) from exc
    console.print("PostgreSQL stopped." if stopped else "PostgreSQL was not running.")


@app.command()
def status() -> None:
    """Show where the database is and whether it is running. Exit code 3 when it is down."""
    settings = get_settings()
    if settings.database_url:
        url = settings.database_url
        try:
            ensure_database(settings)
        except ClusterError as exc:
            raise _fail(exc) from exc
        console.print(f"Using SDI_DATABASE_URL {mask_url(url)}: it answers and has PostGIS.")
        return
    info = LocalCluster(settings).status()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    running = f"[green]running[/] (pid {info.pid})" if info.running else "[red]stopped[/]"
    if not info.initialised:
        running = "[yellow]not created yet[/] (`sdi db start` creates it)"
    table.add_row("state", running)
    table.add_row("address", f"{info.host}:{info.port} (TCP, scram-sha-256)")
    table.add_row("database", f"{settings.db_name} (owner {settings.db_user})")
    table.add_row("PostgreSQL", f"{info.version or '-'} ({info.bindir or 'binaries not found'})")
    table.add_row("runs as", info.run_as)
    table.add_row("data", str(info.data_dir))
    table.add_row("sockets", str(info.socket_dir))
    table.add_row("log", str(info.log_file))
    if info.note:
        table.add_row("note", info.note)
    console.print(table)
    if not info.running:
        raise typer.Exit(3)


@app.command()
def url(
    dbname: Annotated[str | None, typer.Option(help="Another database on the same server")] = None,
) -> None:
    """Print the database URL, password included (for psql, QGIS, ogr2ogr, …)."""
    try:
        typer.echo(database_url(get_settings(), dbname))
    except ClusterError as exc:
        raise _fail(exc) from exc


@app.command()
def roles() -> None:
    """Create the API and ETL roles (idempotent; passwords in the state dir, 0600) and grant
    them their privileges on the warehouse as it is now (sdi.db.roles)."""
    from sdi.db import connect
    from sdi.db.roles import RoleError, apply_grants, role_names

    settings = get_settings()
    try:
        ensure_database(settings)
        with connect(settings, autocommit=True) as conn:
            apply_grants(conn, settings)
    except (ClusterError, RoleError) as exc:
        raise _fail(exc) from exc
    names = role_names(settings)
    console.print(
        f"Roles ready: [bold]{names.api}[/] (the OGC API: reads what is published, writes "
        f"incidents), [bold]{names.etl}[/] (warehouse writes); owner {names.owner}.",
        highlight=False,
    )


@app.command()
def grants(
    print_: Annotated[
        bool, typer.Option("--print", help="Print the SQL instead of applying it")
    ] = False,
) -> None:
    """The GRANTs of the API and ETL roles, derived from the layer files and the catalog.

    With --print, the SQL for a DBA of an existing PostGIS (run it as the schema's owner
    after creating the roles; rerun after each migration). Without, applies it.
    """
    from sdi.db import connect
    from sdi.db.roles import RoleError, apply_grants, grant_statements, role_names

    settings = get_settings()
    try:
        with connect(settings, autocommit=True) as conn:
            if print_:
                names = role_names(settings, conn.info.dbname)
                typer.echo(
                    f"-- Roles (create once, with passwords of your choice):\n"
                    f"-- CREATE ROLE {names.api} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "PASSWORD '…';\n"
                    f"-- CREATE ROLE {names.etl} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "PASSWORD '…';\n"
                    f"-- CREATE ROLE {names.personal} NOLOGIN;  -- keyed reads of personal columns"
                )
                for statement in grant_statements(conn, settings):
                    typer.echo(statement + ";")
                return
            apply_grants(conn, settings)
    except (ClusterError, RoleError) as exc:
        raise _fail(exc) from exc
    console.print("Grants applied.")


# -- replicas (sdi.db.replica) ---------------------------------------------------------------
replica_app = typer.Typer(
    help="Hot standbys of the local cluster (streaming replication, 127.0.0.1 only): the API "
    "reads from them and writes to the primary. README, 'Past one machine'.",
    no_args_is_help=True,
)
app.add_typer(replica_app, name="replica")


def _local_only() -> None:
    if get_settings().database_url:
        raise _fail(
            ClusterError(
                "SDI_DATABASE_URL is set: replicas of an existing PostgreSQL are made by its "
                "DBA; list them in SDI_READ_DATABASE_URLS for the API."
            )
        )


@replica_app.command("add")
def replica_add(
    name: Annotated[str, typer.Argument(help="A short name: r1, r2, …")],
    port: Annotated[int | None, typer.Option(help="Its port (default: the next free one)")] = None,
) -> None:
    """Copy the running local cluster (pg_basebackup) into a hot standby and start it.

    A primary still at wal_level=minimal (the default) is restarted once with wal_level=replica.
    """
    from sdi.db import replica

    _local_only()
    try:
        made = replica.add(get_settings(), name, port)
    except ClusterError as exc:
        raise _fail(exc) from exc
    console.print(
        f"Replica [bold]{made.name}[/] streaming on {made.host}:{made.port} "
        f"({made.data_dir}). Running API instances read from it within a few seconds.",
        highlight=False,
    )


@replica_app.command("list")
def replica_list() -> None:
    """The local replicas: port, state, and how far behind the primary they are."""
    from sdi.db import replica

    _local_only()
    primary = LocalCluster(get_settings())
    table = Table(box=None, pad_edge=False)
    for column in ("name", "port", "state", "lag (bytes)", "data"):
        table.add_column(column)
    for one in replica.replicas(primary):
        found = replica.info(primary, one)
        if not found.running:
            state = "[red]stopped[/]"
        elif found.streaming:
            state = "[green]streaming[/]"
        else:
            state = "[yellow]running, not streaming[/]"
        lag = "-" if found.lag_bytes is None else str(found.lag_bytes)
        table.add_row(found.name, str(found.port), state, lag, str(found.data_dir))
    console.print(table)


def _replica(name: str) -> Replica:
    from sdi.db import replica

    return replica.Replica(LocalCluster(get_settings()), name)


@replica_app.command("start")
def replica_start(name: Annotated[str, typer.Argument(help="The replica's name")]) -> None:
    """Start a stopped replica (it catches up from its slot on the primary)."""
    _switch_replica(name, "start", ("started.", "was running."))


@replica_app.command("stop")
def replica_stop(name: Annotated[str, typer.Argument(help="The replica's name")]) -> None:
    """Stop a replica; the API reads from the primary (or the others) meanwhile."""
    _switch_replica(name, "stop", ("stopped.", "was not running."))


def _switch_replica(name: str, action: str, said: tuple[str, str]) -> None:
    _local_only()
    try:
        changed = getattr(_replica(name), action)()
    except ClusterError as exc:
        raise _fail(exc) from exc
    console.print(f"Replica {name} " + (said[0] if changed else said[1]))


@replica_app.command("remove")
def replica_remove(name: Annotated[str, typer.Argument(help="The replica's name")]) -> None:
    """Stop a replica, delete its data directory and drop its slot on the primary."""
    from sdi.db import replica

    _local_only()
    try:
        removed = replica.remove(get_settings(), name)
    except ClusterError as exc:
        raise _fail(exc) from exc
    console.print(f"Replica {name} removed." if removed else f"There is no replica {name}.")


if __name__ == "__main__":
    app()
