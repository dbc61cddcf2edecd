"""``sdi worker``: a procrastinate worker over the warehouse's queue (:mod:`sdi.jobs.queue`).

Runs on any machine that reaches the database (it needs the project's settings, the
``pygeoapi-config.yml`` the servers use, and for ETL runs the sources). At start it runs the
housekeeping once (jobs of dead workers failed or re-queued, old jobs purged); then it takes
jobs until SIGTERM/SIGINT, finishing the running ones for up to ``GRACE`` seconds. Its
heartbeat every third of ``SDI_WORKER_STALLED_SECONDS`` is what tells the other workers it
is alive.
"""

from __future__ import annotations

import asyncio
import logging

from sdi.jobs.queue import QUEUES, get_app, housekeeping, worker_name
from sdi.settings import get_settings

LOGGER = logging.getLogger("sdi.jobs")
GRACE = 20.0  # seconds running jobs may take to finish when the worker is stopped


def run(
    *, concurrency: int | None = None, once: bool = False, queues: list[str] | None = None
) -> None:
    """Work the queue until stopped (``once``: until it is empty)."""
    settings = get_settings()
    stalled = settings.worker_stalled_seconds

    async def work() -> None:
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
                install_signal_handlers=True,
            )

    asyncio.run(work())
