"""``sdi worker``: a procrastinate worker over the warehouse's queue (:mod:`sdi.jobs.queue`).

Runs on any machine that reaches the database (it needs the project's settings, the
``pygeoapi-config.yml`` the servers use, and for ETL runs the sources). At start it runs the
housekeeping once (jobs of dead workers failed or re-queued, old jobs purged); then it takes
jobs until SIGTERM/SIGINT, finishing the running ones for up to ``GRACE`` seconds. Its
heartbeat every third of ``SDI_WORKER_STALLED_SECONDS`` is what tells the other workers it
is alive.

It outlives the database: when procrastinate stops because its connection is gone (a restart,
a failover), the worker waits until the database answers again (a probe every
``RECONNECT_PROBE`` s at most) and starts over with a fresh pool — so a job queued after the
database is back is taken within a couple of seconds, with nobody restarting the worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import psycopg
from procrastinate.exceptions import ConnectorException
from psycopg_pool import PoolTimeout

from sdi.jobs.queue import QUEUES, get_app, housekeeping, worker_name
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.jobs")
GRACE = 20.0  # seconds running jobs may take to finish when the worker is stopped
RECONNECT_PROBE = 1.0  # seconds between two probes of a database that is away (at most)
# What says the database went away under the worker (anything else is a bug: it stops it).
_LOST = (ConnectorException, psycopg.OperationalError, PoolTimeout, OSError)


def run(
    *, concurrency: int | None = None, once: bool = False, queues: list[str] | None = None
) -> None:
    """Work the queue until stopped (``once``: until it is empty)."""
    settings = get_settings()
    stalled = settings.worker_stalled_seconds

    async def work_once() -> None:
        app = get_app()
        async with app.open_async():
            summary = await housekeeping()
            LOGGER.info("worker %s started; housekeeping: %s", worker_name(), summary)
            await app.run_worker_async(
                queues=queues or list(QUEUES),
                concurrency=concurrency or settings.worker_concurrency,
                wait=not once,
                name=worker_name(),
                update_heartbeat_interval=max(0.5, stalled / 3),
                stalled_worker_timeout=stalled,
                shutdown_graceful_timeout=GRACE,
                listen_notify=True,
                install_signal_handlers=False,  # work() handles them
            )

    async def work() -> None:
        # Our own signal handling: procrastinate also stops (without raising) when its
        # connection is lost, and only a stop asked for by a signal may end the worker.
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        current = asyncio.current_task()

        def stop() -> None:
            if not stopping.is_set() and current is not None:
                stopping.set()
                current.cancel()  # procrastinate: finish the running jobs (GRACE), then stop

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop)
        try:
            while True:
                try:
                    await work_once()
                    if once:
                        return
                    reason = "it stopped by itself"
                except _LOST as exc:
                    reason = " ".join(str(exc.__cause__ or exc).split())[:300]
                LOGGER.warning(
                    "worker %s lost the database (%s); starting again when it answers",
                    worker_name(),
                    reason,
                )
                await asyncio.sleep(RECONNECT_PROBE)
                await _until_reachable()
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise

    asyncio.run(work())


async def _until_reachable() -> None:
    """Return once a connection to the queue's database succeeds (probing every
    :data:`RECONNECT_PROBE` s at most; each probe gives up after 2 s)."""
    from sdi.db import database_url

    url = database_url()
    started = time.monotonic()
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=2)
        except psycopg.OperationalError:
            await asyncio.sleep(RECONNECT_PROBE)
            continue
        await conn.close()
        LOGGER.info("database reachable again after %.1f s", time.monotonic() - started)
        return
