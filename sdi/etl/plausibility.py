"""Plausibility of observation feeds (water levels, rainfall): a reading that cannot be true is
rejected before it can raise a warning.

A job spec turns it on with ``validation.plausibility`` (schemas/job-spec.schema.json)::

    validation:
      plausibility:
        station: gauge_code             # column holding the station code
        time: observed_at               # column holding the observation time
        value: water_level_m            # column holding the observed value
        stations: {table: hazard.gauges_current, column: gauge_code}  # the station register
        range: [-2.0, 15.0]             # physical range, in the value's unit
        max_change_per_hour: 3.0        # largest credible change within one hour
        stuck_hours: 12                 # the same value this long: a stuck sensor
        stuck_ignore: [0]               # values that may legitimately last (no rain)
        stations_override:              # per station, any of the three limits
          G-HL-01: {range: [-1.0, 9.0]}

Every delivered row is checked, each with its own reason in the run's rejects
(``sdi etl report RUN``):

- its station is in the register (an unknown code is rejected, never stored silently);
- its value lies in the station's physical range;
- it differs from the station's previous credible reading (stored or delivered earlier in
  time) by at most ``max_change_per_hour`` × the hours between them, counted as at least one
  hour — within any hour the value never moves more than the limit, so a spike is rejected
  and the reading after it is compared with the last credible one, not with the spike;
- it is not one more identical value of a run lasting ``stuck_hours`` or longer (values in
  ``stuck_ignore`` excepted: a rain gauge reads 0 for weeks).

Readings are checked per station in time order together with the stored readings around
them, so a late reading is judged against its real neighbours. Rejected readings are not
stored, so they never become "the latest" and never reach a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from sdi.etl.normalise import Issues


def _range(limits: Limits) -> str:
    low = "…" if limits.low is None else f"{limits.low:g}"
    high = "…" if limits.high is None else f"{limits.high:g}"
    return f"{low} to {high}"


@dataclass(frozen=True)
class Limits:
    """The three limits of one station (None: not checked)."""

    low: float | None = None
    high: float | None = None
    max_change_per_hour: float | None = None
    stuck_hours: float | None = None


@dataclass
class Plausibility:
    """The checks of one run: the spec's options, the register and what was accepted so far."""

    station: str
    time: str
    value: str
    table: str
    register_table: str | None = None
    register_column: str | None = None
    default: Limits = field(default_factory=Limits)
    overrides: dict[str, Limits] = field(default_factory=dict)
    stuck_ignore: frozenset[float] = frozenset()
    _known: set[str] | None = None
    _stored_rows: pd.DataFrame | None = None
    # credible readings accepted earlier in this delivery, per station: (time, value)
    _accepted: dict[str, list[tuple[Any, float]]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, options: dict, table: str) -> Plausibility:
        """The checks of ``validation.plausibility`` for a job loading ``table``."""

        def limits(raw: dict, base: Limits) -> Limits:
            low, high = raw.get("range", (base.low, base.high))
            return Limits(
                low,
                high,
                raw.get("max_change_per_hour", base.max_change_per_hour),
                raw.get("stuck_hours", base.stuck_hours),
            )

        default = limits(options, Limits())
        register = options.get("stations") or {}
        return cls(
            station=options["station"],
            time=options["time"],
            value=options["value"],
            table=table,
            register_table=register.get("table"),
            register_column=register.get("column", options["station"]),
            default=default,
            overrides={
                code: limits(raw, default)
                for code, raw in (options.get("stations_override") or {}).items()
            },
            stuck_ignore=frozenset(float(v) for v in options.get("stuck_ignore", ())),
        )

    def limits(self, station: str) -> Limits:
        return self.overrides.get(station, self.default)

    # -- what is stored, read before the load starts (its COPY then holds the connection) --
    def prepare(self, conn: psycopg.Connection) -> None:
        """Read the register and, per station, the stored readings of the hours before its
        latest one (enough for the change and stuck-sensor checks)."""
        if self.register_table is not None and self.register_column is not None:
            schema, _, name = self.register_table.partition(".")
            self._known = {
                code
                for (code,) in conn.execute(
                    sql.SQL("SELECT DISTINCT {c} FROM {t} WHERE {c} IS NOT NULL").format(
                        c=sql.Identifier(self.register_column), t=sql.Identifier(schema, name)
                    )
                )
            }
        hours = max(
            [self.default.stuck_hours or 0, *(o.stuck_hours or 0 for o in self.overrides.values())]
        )
        schema, _, name = self.table.partition(".")
        rows = conn.execute(
            sql.SQL(
                "WITH latest AS (SELECT {s}, max({t}) AS at FROM {table} GROUP BY {s}) "
                "SELECT r.{s}, r.{t}, r.{v} FROM {table} r JOIN latest l ON l.{s} = r.{s} "
                "AND r.{t} >= l.at - make_interval(hours => %s) ORDER BY 1, 2"
            ).format(
                s=sql.Identifier(self.station),
                t=sql.Identifier(self.time),
                v=sql.Identifier(self.value),
                table=sql.Identifier(schema, name),
            ),
            (int(max(hours, 24)) + 24,),
        ).fetchall()
        self._stored_rows = pd.DataFrame(rows, columns=["station", "time", "value"])

    # -- one batch --------------------------------------------------------------------------
    def check(self, frame: pd.DataFrame, issues: Issues, candidates: np.ndarray) -> int:
        """Flag the implausible rows of a normalised batch among ``candidates`` (a mask of rows
        still to be stored); returns how many were flagged."""
        before = int((~issues.ok).sum())
        stations = frame[self.station].astype(object).to_numpy()
        mask = np.asarray(candidates, dtype=bool) & issues.ok
        known = self._known
        if known is not None:
            unknown = mask & ~np.isin(stations, list(known))
            if unknown.any():
                issues.flag(
                    unknown,
                    np.array(
                        [
                            f"unknown station {s!r}: not in the register {self.register_table}"
                            for s in stations
                        ],
                        dtype=object,
                    ),
                )
                mask &= ~unknown
        if mask.any():
            self._check_series(frame, stations, mask, issues)
        return int((~issues.ok).sum()) - before

    def _check_series(
        self,
        frame: pd.DataFrame,
        stations: np.ndarray,
        mask: np.ndarray,
        issues: Issues,
    ) -> None:
        times = pd.to_datetime(frame[self.time], utc=True)
        values = pd.to_numeric(frame[self.value], errors="coerce").to_numpy(dtype=float)
        positions = np.flatnonzero(mask)
        wanted = sorted({str(s) for s in stations[positions]})
        stored = self._stored_rows
        if stored is None:
            raise RuntimeError("Plausibility.prepare() must run before the load's COPY")
        reasons = np.full(len(frame), None, dtype=object)
        for station in wanted:
            mine = positions[stations[positions] == station]
            delivered_times = {times.iloc[p] for p in mine}
            series: list[tuple[Any, float, int]] = [
                (pd.Timestamp(t), float(v), -1)
                for t, v in stored.loc[stored.station == station, ["time", "value"]].itertuples(
                    index=False
                )
                # a delivered reading at the same instant replaces (corrects) the stored one
                if pd.Timestamp(t) not in delivered_times
            ]
            series += [(t, v, -1) for t, v in self._accepted.get(station, ())]
            series += [(times.iloc[p], float(values[p]), int(p)) for p in mine]
            series.sort(key=lambda item: (item[0], item[2]))
            self._scan(station, series, reasons)
        issues.flag(pd.notna(reasons), reasons)

    def _scan(
        self, station: str, series: list[tuple[Any, float, int]], reasons: np.ndarray
    ) -> None:
        """One station's readings in time order; delivered ones (position ≥ 0) are judged."""
        limits = self.limits(station)
        last: tuple[Any, float] | None = None
        run_start, run_value = None, None
        accepted = self._accepted.setdefault(station, [])
        for at, value, position in series:
            reason = None
            if position >= 0:
                reason = self._judge(limits, at, value, last, run_start, run_value)
                if reason:
                    reasons[position] = f"implausible reading of {station} at {at}: {reason}"
                    continue
                accepted.append((at, value))
            if value != run_value:
                run_start, run_value = at, value
            last = (at, value)

    def _judge(self, limits: Limits, at, value, last, run_start, run_value) -> str | None:
        if value != value:  # NaN: the normaliser has already said why
            return None
        if (limits.low is not None and value < limits.low) or (
            limits.high is not None and value > limits.high
        ):
            return f"{value:g} is outside the station's physical range ({_range(limits)})"
        if limits.max_change_per_hour is not None and last is not None:
            hours = max((at - last[0]).total_seconds() / 3600, 1.0)
            change = abs(value - last[1])
            if change > limits.max_change_per_hour * hours + 1e-9:
                return (
                    f"changes by {change:g} from {last[1]:g} at {last[0]} (more than "
                    f"{limits.max_change_per_hour:g} per hour)"
                )
        if (
            limits.stuck_hours is not None
            and run_value is not None
            and value == run_value
            and value not in self.stuck_ignore
            and (at - run_start).total_seconds() / 3600 >= limits.stuck_hours
        ):
            return f"the same value {value:g} since {run_start}: a stuck sensor"
        return None
