"""SDI_* settings set around a block of a test, restored after (the one copy of that dance)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sdi.settings import Settings, get_settings


@contextlib.contextmanager
def sdi_settings(**env: str) -> Iterator[Settings]:
    """``env`` in ``os.environ`` (servers and commands started inside inherit it) and the
    settings read again; the previous values and settings come back at the end."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
