"""Time the stages of an in-process ``sdi.etl.runner.run_job`` without editing ``sdi/``.

Functions of the pipeline are wrapped (module attributes patched for the duration of a
``with Instrumented():`` block); nested sections are timed inclusive and exclusive (self), so
the exclusive times add up to the run. SQL statements are timed through a connection proxy
and labelled by what they do; optionally their plans are recorded (EXPLAIN, not ANALYZE).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql


class Clock:
    def __init__(self) -> None:
        self.stack: list[list[Any]] = []  # [name, start, children seconds]
        self.totals: dict[str, list[float]] = {}  # name → [inclusive, exclusive, calls]

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        frame = [name, time.perf_counter(), 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            took = time.perf_counter() - frame[1]
            total = self.totals.setdefault(name, [0.0, 0.0, 0])
            total[0] += took
            total[1] += took - frame[2]
            total[2] += 1
            if self.stack:
                self.stack[-1][2] += took

    def wrap(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.section(name):
                return fn(*args, **kwargs)

        return wrapper

    def wrap_generator(self, name: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(fn(*args, **kwargs))
            while True:
                with self.section(name):
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item

        return wrapper

    def report(self) -> list[dict]:
        rows = [
            {"section": k, "seconds": round(v[1], 3), "inclusive": round(v[0], 3), "calls": v[2]}
            for k, v in self.totals.items()
        ]
        return sorted(rows, key=lambda r: -r["seconds"])


_MERGE_LABELS = [
    (r"^\s*DROP INDEX", "merge: drop indexes (empty target: built after)"),
    (r"^\s*CREATE (UNIQUE )?INDEX", "merge: build indexes after the load"),
    (r"pg_index|indexdef", "merge: look up indexes"),
    (r"^\s*SET ", "merge: settings"),
    (r"^\s*UPDATE .*SET (source|row)_hash", "merge: refresh source/row hashes"),
]
_LABELS = [
    (r"^\s*LOCK TABLE", "merge: LOCK target"),
    (r"WITH closed AS", "merge: close changed versions + insert new versions"),
    (r"^\s*INSERT INTO .*NOT EXISTS", "merge: insert new features (anti-join, indexes)"),
    (r"^\s*UPDATE .*NOT EXISTS", "merge: retire missing (anti-join)"),
    (r"^\s*CREATE TEMP TABLE", "stage: create temp table"),
    (r"^\s*CREATE INDEX", "stage: index natural_key"),
    (r"^\s*ANALYZE", "stage: ANALYZE"),
    (r"^\s*COPY etl\.rejects", "bookkeeping: store rejects"),
    (r"^\s*UPDATE etl\.runs SET status = %s", "bookkeeping: finish run"),
    (r"etl\.run", "bookkeeping: runs, lock, fingerprint"),
    (r"pg_try_advisory_lock", "bookkeeping: runs, lock, fingerprint"),
    (r"pg_attribute", "stage: introspect target"),
]


class _Proxy:
    """A module stand-in: the given attributes replaced, everything else delegated."""

    def __init__(self, module: Any, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _text(statement: Any) -> str:
    text = statement if isinstance(statement, str) else repr(statement)
    if not isinstance(statement, str | bytes):
        with contextlib.suppress(Exception):
            text = statement.as_string(None)
    return text


def label(statement: Any, within: str = "") -> str:
    text = _text(statement)
    patterns = (_MERGE_LABELS if within.startswith("merge") else []) + _LABELS
    for pattern, name in patterns:
        if re.search(pattern, text, re.S):
            return name
    return ""


class TimedConnection:
    """A psycopg connection whose ``execute`` and commit are timed and labelled."""

    def __init__(
        self,
        conn: psycopg.Connection,
        clock: Clock,
        plans: dict[str, str] | None,
        before_merge: Callable[[psycopg.Connection], None] | None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._plans = plans
        self._before_merge = before_merge

    def execute(self, statement: Any, params: Any = None, **kwargs: Any) -> Any:
        within = self._clock.stack[-1][0] if self._clock.stack else ""
        name = label(statement, within)
        scoped = name.split(":")[0] in ("merge", "stage")  # only inside their own sections
        if not name or (scoped and not within.startswith(name.split(":")[0])):
            words = " ".join(_text(statement).split()[:4])[:48]
            name = f"sql in {within}" if within else f"sql: other ({words} …)"
        if name == "merge: LOCK target" and self._before_merge:
            with self._clock.section("(bench: capture, excluded)"):
                self._before_merge(self._conn)
        plannable = re.match(r"\s*(WITH|INSERT|UPDATE|DELETE|SELECT)\b", _text(statement), re.I)
        if self._plans is not None and name.startswith("merge:") and plannable:
            with self._clock.section("(bench: capture, excluded)"):
                text = sql.SQL(statement) if isinstance(statement, str) else statement
                plan = self._conn.execute(sql.SQL("EXPLAIN ") + text, params).fetchall()
                self._plans[name] = "\n".join(r[0] for r in plan)
        with self._clock.section(name):
            return self._conn.execute(statement, params, **kwargs)

    @contextlib.contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        manager = self._conn.transaction(*args, **kwargs)
        tx = manager.__enter__()
        try:
            yield tx
        except BaseException as exc:
            if not manager.__exit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            with self._clock.section("commit (WAL flush)"):
                manager.__exit__(None, None, None)

    def __enter__(self) -> TimedConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._conn.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _resolve(path: str) -> tuple[Any, str] | None:
    """``"sdi.etl.pipeline:JobRun.normalise"`` → (owner, attribute), or None if absent."""
    module_name, _, dotted = path.partition(":")
    owner = _module(module_name)
    *parents, attribute = dotted.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
    if owner is None or attribute not in getattr(owner, "__dict__", {}):
        return None
    return owner, attribute


# What is timed: (section name, candidate places — the code moves, the first found is used).
# Every candidate that exists is patched (a name imported into several modules).
SECTIONS: list[tuple[str, list[str]]] = [
    ("read: shapely.from_wkb", ["shapely:from_wkb"]),
    ("read: decode text", ["sdi.etl.read:_decode_text"]),
    ("read: count rows (progress)", ["sdi.etl.readers:count_rows", "sdi.etl.read:count_rows"]),
    (
        "normalise: other (masks, filter, set_srid)",
        ["sdi.etl.pipeline:JobRun.normalise", "sdi.etl.runner:JobRun.normalise"],
    ),
    ("normalise: attributes (other)", ["sdi.etl.pipeline:map_fields", "sdi.etl.runner:map_fields"]),
    ("normalise: natural keys", ["sdi.etl.normalise:natural_keys"]),
    ("normalise: casts (text/int/float)", ["sdi.etl.normalise:_cast"]),
    ("normalise: code lists", ["sdi.etl.normalise:_apply_codes"]),
    (
        "validate: geometry (is_valid, make_valid)",
        ["sdi.etl.pipeline:check_geometry", "sdi.etl.runner:check_geometry"],
    ),
    ("WKB: walk the delivered bytes", ["sdi.etl.wkb:Layout.parse"]),
    ("WKB: reproject in place (incl. PROJ)", ["sdi.etl.wkb:Layout.reproject"]),
    ("transform → EPSG:4326 (pyproj)", ["sdi.etl.normalise:Reprojector.to_storage"]),
    ("transform → province CRS", ["sdi.etl.normalise:Reprojector.to_province"]),
    (
        "source hash: read current hashes",
        ["sdi.etl.unchanged:CurrentHashes.read", "sdi.etl.pipeline:JobRun.track_sources"],
    ),
    (
        "source hash: hash rows (to_wkb + hash_pandas_object)",
        ["sdi.etl.pipeline:JobRun._source_hashes"],
    ),
    (
        "pandas Index.get_indexer (source-hash key match)",
        ["pandas.core.indexes.base:Index.get_indexer"],
    ),
    ("validate: bounds", ["sdi.etl.pipeline:check_bounds", "sdi.etl.runner:check_bounds"]),
    ("derive: area_m2", ["sdi.etl.pipeline:_derive", "sdi.etl.runner:_derive"]),
    ("to_wkb (WKB for the COPY)", ["shapely:to_wkb"]),
    (
        "validate: duplicate keys",
        ["sdi.etl.validate:FirstSeen.check", "sdi.etl.validate:DuplicateKeys.check"],
    ),
    (
        "rejects: keep raw rows",
        ["sdi.etl.pipeline:JobRun._keep_rejects", "sdi.etl.runner:JobRun._keep_rejects"],
    ),
    # The COPY runs in a background thread (not timed here, the clock is single-threaded):
    # the main thread only waits when the server is two batches behind, and at the end.
    (
        "stage: queue a batch for the COPY (waits while the server is behind)",
        ["sdi.etl.stage:Stage.write"],
    ),
    (
        "stage: end of the COPY (waits for the server), index the stage",
        ["sdi.etl.stage:Stage.__exit__"],
    ),
    ("load: first-load check (lock, any current row)", ["sdi.etl.merge:has_current_rows"]),
    ("stage: create (other)", ["sdi.etl.stage:Stage.__init__"]),
    ("stage: introspect target (other)", ["sdi.etl.stage:TargetTable.introspect"]),
    ("merge: other", ["sdi.etl.merge:merge", "sdi.etl.runner:merge"]),
    ("merge: touched communes", ["sdi.etl.merge:touched_communes"]),
    ("after_load hook (flood warnings)", ["sdi.hazard.hooks:after_load"]),
    ("after_load hook (planning refresh)", ["sdi.planning.hooks:after_load"]),
    ("after_load: ANALYZE", ["sdi.etl.hooks:analyze"]),
    ("after_load: what to ANALYZE", ["sdi.etl.hooks:_to_analyze"]),
    ("bookkeeping: record encodings", ["sdi.etl.runner:record_encodings"]),
    (
        "bookkeeping: store rejects",
        ["sdi.etl.pipeline:store_rejects", "sdi.etl.runner:_store_rejects"],
    ),
]
GENERATORS = [
    (
        "read: pyogrio Arrow batch → pandas",
        ["sdi.etl.pipeline:read_batches", "sdi.etl.runner:read_batches"],
    ),
]


class Instrumented:
    """Patch the pipeline's functions with timers for the duration of the block."""

    def __init__(
        self,
        clock: Clock,
        plans: dict[str, str] | None = None,
        before_merge: Callable[[psycopg.Connection], None] | None = None,
    ) -> None:
        self.clock = clock
        self.plans = plans
        self.before_merge = before_merge
        self.missing: list[str] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def _patch(self, owner: Any, attribute: str, value: Any) -> None:
        self._saved.append((owner, attribute, owner.__dict__[attribute]))
        setattr(owner, attribute, value)

    def _time_all(self, name: str, candidates: list[str], generator: bool = False) -> None:
        found = [r for r in map(_resolve, candidates) if r]
        if not found:
            self.missing.append(name)
        wrap = self.clock.wrap_generator if generator else self.clock.wrap
        for owner, attribute in found:
            original = owner.__dict__[attribute]
            if isinstance(original, classmethod):
                self._patch(owner, attribute, classmethod(wrap(name, original.__func__)))
            else:
                self._patch(owner, attribute, wrap(name, original))

    def __enter__(self) -> Instrumented:
        c = self.clock
        lazy = (
            "sdi.etl.pipeline",
            "sdi.etl.unchanged",
            "sdi.etl.merge",
            "sdi.etl.readers.ogr",
            "sdi.etl.stage",
        )
        for module in (*lazy, "sdi.hazard.hooks", "sdi.planning.hooks", "sdi.etl.hooks"):
            _module(module)  # lazily imported by the runner: import them to patch them
        for name, candidates in GENERATORS:
            self._time_all(name, candidates, generator=True)
        for name, candidates in SECTIONS:
            self._time_all(name, candidates)
        self._time_all("sha256 of the delivery", ["sdi.etl.runner:SourceFile.fingerprint"])
        stage_mod = _module("sdi.etl.stage")
        if "pa" in stage_mod.__dict__:
            table = _Proxy(
                pa.Table, from_pandas=c.wrap("stage: Arrow table from pandas", pa.Table.from_pandas)
            )
            self._patch(stage_mod, "pa", _Proxy(pa, Table=table))
        if "pa_csv" in stage_mod.__dict__:
            write_csv = c.wrap("stage: Arrow CSV write", pa_csv.write_csv)
            self._patch(stage_mod, "pa_csv", _Proxy(pa_csv, write_csv=write_csv))
        real_connect = psycopg.connect

        def connect(*args: Any, **kwargs: Any) -> TimedConnection:
            with c.section("connect"):
                conn = real_connect(*args, **kwargs)
            return TimedConnection(conn, c, self.plans, self.before_merge)

        runner_mod = _module("sdi.etl.runner")
        self._patch(runner_mod, "psycopg", _Proxy(psycopg, connect=connect))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, attribute, value in reversed(self._saved):
            setattr(owner, attribute, value)
        self._saved.clear()
