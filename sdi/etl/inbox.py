"""The inbox: where departments drop their deliveries, and which jobs have something new.

Layout: ``SDI_SOURCE_DIR`` (default ``.sdi/inbox``) holds one folder per department —
``land/``, ``construction/``, ``utility/``, ``hazard/``, ``admin/`` — and a job's relative
``source.path`` starts with the folder of the department that owns it
(``land/parcels_*.shp``). That first folder is also who may deliver the job over HTTP (the
``etl-run`` process accepts a key of that department, or an administrator's).

The sample deliveries live apart, in ``SDI_SAMPLES_DIR`` (default ``etl/samples``); ``sdi up``
links each sample department folder into the inbox where the inbox has no folder of that name
(:func:`link_samples`), so the demo runs the same jobs a real inbox feeds.

``sdi etl run --changed`` asks :func:`changed_jobs` which jobs to run: those whose spec or
files differ from the last run (any outcome: a delivery that failed is not retried until it
changes). Sizes and modification times decide; a file with the same size and another mtime
is hashed to be sure. Nothing heavy is imported: 50 unchanged jobs cost a few milliseconds
of stat calls and one query.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import yaml

from sdi.errors import SdiError
from sdi.etl.spec import JobSpec, discover_jobs, load_job
from sdi.settings import Settings, get_settings


def department_of(job: JobSpec) -> str | None:
    """The inbox folder (department) a job's delivery comes from, or None (absolute path)."""
    parts = Path(job.source.path).parts
    if Path(job.source.path).is_absolute() or len(parts) < 2:
        return None
    return parts[0].lower()


def link_samples(settings: Settings | None = None) -> list[str]:
    """Link each department folder of the samples into the inbox where it has none; the
    departments linked."""
    settings = settings or get_settings()
    samples, inbox = settings.samples_dir, settings.source_dir
    if not samples.is_dir() or samples.resolve() == inbox.resolve():
        return []
    inbox.mkdir(parents=True, exist_ok=True)
    linked = []
    for folder in sorted(p for p in samples.iterdir() if p.is_dir()):
        target = inbox / folder.name
        if target.exists() or target.is_symlink():
            continue
        os.symlink(folder.resolve(), target, target_is_directory=True)
        linked.append(folder.name)
    return linked


def _parts(path: Path) -> list[Path]:
    from sdi.etl.readers import SIDECARS

    return [p for p in [path, *(path.with_suffix(s) for s in SIDECARS)] if p.exists()]


def stat_of(path: Path) -> tuple[int, datetime]:
    """The delivery's size (file and sidecars) and its latest modification time: what a run
    records of each source and ``--changed`` compares."""
    parts = _parts(path)
    stats = [p.stat() for p in parts]
    mtime = max(s.st_mtime for s in stats)
    return sum(s.st_size for s in stats), datetime.fromtimestamp(mtime, tz=UTC)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    for part in _parts(path):
        with part.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Pending:
    """A job ``--changed`` looked at: whether to run it, and why (or why not)."""

    job: str
    run: bool
    reason: str


_LAST_RUNS = """
SELECT DISTINCT ON (r.job) r.job, r.run_id, r.options->>'spec_sha256'
FROM etl.runs r
WHERE r.job = ANY(%s) AND r.status <> 'skipped' AND r.status <> 'running'
  AND coalesce((r.options->>'dry_run')::boolean, false) = false
ORDER BY r.job, r.run_id DESC
"""


def changed_jobs(conn: psycopg.Connection, settings: Settings | None = None) -> list[Pending]:
    """Every job of the jobs folder, with whether its spec or delivery changed since its last
    run. A spec that does not load is returned as to-run (its run reports the error)."""
    settings = settings or get_settings()
    specs = discover_jobs(settings)
    last = {
        job: (run_id, spec_sha)
        for job, run_id, spec_sha in conn.execute(_LAST_RUNS, (list(specs),)).fetchall()
    }
    recorded: dict[int, dict[str, tuple[str, int, datetime | None]]] = {}
    if last:
        for run_id, path, sha, size, modified in conn.execute(
            "SELECT run_id, path, sha256, size_bytes, modified_at FROM etl.run_sources "
            "WHERE run_id = ANY(%s)",
            ([run_id for run_id, _ in last.values()],),
        ):
            recorded.setdefault(run_id, {})[path] = (sha, size, modified)
    out = []
    for name, spec_path in specs.items():
        text = spec_path.read_bytes()
        spec_sha = hashlib.sha256(text).hexdigest()
        if name in last and last[name][1] == spec_sha:
            # the spec a run already loaded: only its source path is needed (the full check
            # with line numbers costs 30 ms a spec; libyaml reads it in well under one)
            source_path = yaml.load(text, Loader=yaml.CSafeLoader)["source"]["path"]
        else:
            try:
                source_path = load_job(spec_path, settings).source.path
            except SdiError as exc:
                out.append(Pending(name, True, f"spec does not load: {exc}"))
                continue
        out.append(
            _compare(name, spec_path, source_path, spec_sha, last.get(name), recorded, settings)
        )
    return out


def _compare(
    name: str,
    spec_path: Path,
    source_path: str,
    spec_sha: str,
    last: tuple[int, str] | None,
    recorded: dict[int, dict[str, tuple[str, int, datetime | None]]],
    settings: Settings,
) -> Pending:
    pattern = Path(source_path)
    if not pattern.is_absolute():
        pattern = settings.source_dir / pattern
    files = sorted(Path(p) for p in glob.glob(str(pattern)))
    if not files:
        return Pending(name, False, f"nothing delivered ({pattern})")
    if last is None:
        return Pending(name, True, "never run")
    run_id, last_spec_sha = last
    if last_spec_sha != spec_sha:
        return Pending(name, True, f"{spec_path.name} changed")
    before = recorded.get(run_id, {})
    if set(before) != {str(f) for f in files}:
        return Pending(name, True, "other files delivered")
    for path in files:
        sha, size, modified = before[str(path)]
        now_size, now_modified = stat_of(path)
        if now_size != size:
            return Pending(name, True, f"{path.name} changed size")
        touched = modified is None or abs((now_modified - modified).total_seconds()) > 1e-3
        # touched but maybe not changed: the hash decides
        if touched and sha256_of(path) != sha:
            return Pending(name, True, f"{path.name} changed")
    return Pending(name, False, "unchanged since its last run")
