"""One self-contained HTML page per run: what an analyst checks before telling a department its
delivery is in (``sdi etl report RUN --html FILE``; the result of the ``etl-run`` process).

The page holds the run's counts, the rejects counted per reason, a map — an inline SVG drawn
from the geometries, no script, no CDN, readable offline — with the rejected (red) and
repaired (orange) rows over the accepted ones (blue), the detection evidence (text encoding,
the file's own CRS against ``source.srid``), and what changed against the previous state of
the table, per commune: added, changed, retired.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from sdi.errors import ConfigError, SdiError
from sdi.settings import Settings, get_settings

MAP_FEATURES = 4000  # accepted features drawn at most (a sample of bigger loads)
MAP_REJECTS = 2000
WIDTH, HEIGHT = 900, 560


@dataclass
class Shape:
    kind: str  # current (unchanged) | accepted (written by the run) | repaired | rejected
    geometry: Any  # shapely, lon/lat
    label: str = ""


@dataclass
class Report:
    run: dict[str, Any]
    sources: list[tuple]
    reasons: list[tuple[str, int, str]]  # wording, count, first example
    rejects: list[tuple]  # file, row, key, reason
    shapes: list[Shape] = field(default_factory=list)
    diff: list[tuple[str, int, int, int]] | None = None  # commune, added, changed, retired
    diff_note: str = ""
    table: str | None = None


def _wording(reason: str) -> str:
    return re.sub(r"'[^']*'|\([^)]*\)", "…", reason)


def _columns(conn: psycopg.Connection, table: str) -> set[str]:
    schema, name = table.split(".")
    return {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, name),
        )
    }


def collect(conn: psycopg.Connection, run_id: int, settings: Settings | None = None) -> Report:
    """Everything the page shows, read from the warehouse."""
    settings = settings or get_settings()
    cursor = conn.execute(
        "SELECT run_id, job, status, started_at, finished_at, rows_read, added, updated, "
        "unchanged, retired, rejected, repaired, message, options FROM etl.runs WHERE run_id = %s",
        (run_id,),
    )
    row = cursor.fetchone()
    if row is None:
        raise ConfigError(f"no run {run_id} (see `sdi etl runs`)")
    run = dict(zip([c.name for c in cursor.description or ()], row, strict=True))
    sources = conn.execute(
        "SELECT path, size_bytes, sha256, modified_at, encoding, source_srid "
        "FROM etl.run_sources WHERE run_id = %s ORDER BY path",
        (run_id,),
    ).fetchall()
    rejects = conn.execute(
        "SELECT source_path, row_number, natural_key, reason, raw->>'geometry_wkt' "
        "FROM etl.rejects WHERE run_id = %s ORDER BY source_path, row_number",
        (run_id,),
    ).fetchall()
    wordings = Counter(_wording(r[3]) for r in rejects)
    first: dict[str, str] = {}
    for r in rejects:
        first.setdefault(_wording(r[3]), f"{r[0].rsplit('/', 1)[-1]} row {r[1]}: {r[3]}")
    report = Report(
        run=run,
        sources=sources,
        reasons=[(w, n, first[w]) for w, n in wordings.most_common()],
        rejects=[r[:4] for r in rejects],
    )
    table = _job_table(run["job"], settings)
    report.table = table
    srid = next((s[5] for s in sources if s[5]), None)
    report.shapes += _reject_shapes(rejects, srid)
    if table:
        columns = _columns(conn, table)
        if "geom" in columns:
            report.shapes += _table_shapes(conn, table, columns, run)
        _diff(conn, table, columns, run, report)
    return report


def _job_table(job: str, settings: Settings) -> str | None:
    from sdi.etl.spec import discover_jobs, load_job

    path = discover_jobs(settings).get(job)
    if path is None:
        return None
    try:
        return load_job(path, settings).table
    except SdiError:
        return None


def _reject_shapes(rejects: list[tuple], srid: int | None) -> list[Shape]:
    """Rejected rows' geometries as delivered (source CRS), in lon/lat."""
    import numpy as np
    import shapely
    from pyproj import Transformer

    wkts = [r[4] for r in rejects[:MAP_REJECTS] if r[4]]
    if not wkts:
        return []
    geometries = shapely.from_wkt(np.array(wkts, dtype=object), on_invalid="ignore")
    if srid and srid != 4326:
        try:
            transformer = Transformer.from_crs(srid, 4326, always_xy=True)
            geometries = shapely.transform(
                geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
            )
        except Exception:
            return []  # an unknown CRS: nothing sensible to draw
    labels = [f"{r[0].rsplit('/', 1)[-1]} row {r[1]}: {r[3]}" for r in rejects if r[4]]
    return [
        Shape("rejected", g, label)
        for g, label in zip(geometries, labels, strict=False)
        if g is not None and not g.is_empty
    ]


def _table_shapes(
    conn: psycopg.Connection, table: str, columns: set[str], run: dict
) -> list[Shape]:
    """The run's accepted features (a sample), the repaired ones marked."""
    import shapely

    if "run_id" not in columns:
        return []
    repaired = {r.get("key") for r in (run["options"] or {}).get("repairs", []) if r.get("key")}
    key = sql.Identifier("natural_key") if "natural_key" in columns else sql.NULL
    rows = conn.execute(
        sql.SQL(
            "SELECT {key}, ST_AsBinary(ST_Transform(geom, 4326)) FROM {table} "
            "WHERE run_id = %s LIMIT %s"
        ).format(key=key, table=sql.Identifier(*table.split("."))),
        (run["run_id"], MAP_FEATURES),
    ).fetchall()
    shapes = [
        Shape("repaired" if k in repaired else "accepted", shapely.from_wkb(bytes(g)), str(k or ""))
        for k, g in rows
        if g is not None
    ]
    if "valid_to" in columns:  # the rest of the delivery, unchanged: current, of older runs
        rows = conn.execute(
            sql.SQL(
                "SELECT {key}, ST_AsBinary(ST_Transform(geom, 4326)) FROM {table} "
                "WHERE valid_to IS NULL AND run_id <> %s LIMIT %s"
            ).format(key=key, table=sql.Identifier(*table.split("."))),
            (run["run_id"], MAP_FEATURES),
        ).fetchall()
        shapes += [Shape("current", shapely.from_wkb(bytes(g)), str(k or "")) for k, g in rows if g]
    return shapes


def _diff(
    conn: psycopg.Connection, table: str, columns: set[str], run: dict, report: Report
) -> None:
    """Added / changed / retired per commune: versions this run wrote, and versions it closed
    (their valid_to is the run's transaction time, between its start and finish)."""
    if not {"natural_key", "valid_to", "valid_from", "run_id"} <= columns:
        report.diff_note = f"{table} keeps no versions: there is no diff to show"
        return
    if run["finished_at"] is None:
        report.diff_note = "the run has not finished"
        return
    commune = sql.Identifier("commune_code") if "commune_code" in columns else sql.Literal("")
    query = sql.SQL(
        """
        WITH written AS (
            SELECT t.{commune} AS commune, EXISTS (
                SELECT 1 FROM {table} o WHERE o.natural_key = t.natural_key
                  AND o.run_id <> t.run_id AND o.valid_from < t.valid_from) AS existed
            FROM {table} t WHERE t.run_id = %(run)s
        ), retired AS (
            SELECT t.{commune} AS commune FROM {table} t
            WHERE t.valid_to BETWEEN %(start)s AND %(finish)s AND t.run_id <> %(run)s
              AND NOT EXISTS (SELECT 1 FROM {table} n WHERE n.natural_key = t.natural_key
                              AND n.run_id = %(run)s)
        )
        SELECT coalesce(commune, '') AS commune,
               count(*) FILTER (WHERE kind = 'added'), count(*) FILTER (WHERE kind = 'changed'),
               count(*) FILTER (WHERE kind = 'retired')
        FROM (SELECT commune, CASE WHEN existed THEN 'changed' ELSE 'added' END AS kind
              FROM written
              UNION ALL SELECT commune, 'retired' FROM retired) k
        GROUP BY 1 ORDER BY 1
        """
    ).format(commune=commune, table=sql.Identifier(*table.split(".")))
    rows = conn.execute(
        query, {"run": run["run_id"], "start": run["started_at"], "finish": run["finished_at"]}
    ).fetchall()
    names: dict[str, str] = {}
    if "commune_code" in columns:
        try:
            names = dict(
                conn.execute(
                    "SELECT commune_code, commune_name FROM admin.communes WHERE valid_to IS NULL"
                ).fetchall()
            )
        except psycopg.Error:
            names = {}
    report.diff = [
        (f"{c} {names.get(c, '')}".strip() or "(no commune)", a, ch, r) for c, a, ch, r in rows
    ]


# -- drawing -------------------------------------------------------------------------------

_STYLE = {
    "current": ("#9aa5b1", "#9aa5b155", 1.8),
    "accepted": ("#2f6fb0", "#2f6fb055", 2.2),
    "repaired": ("#e08a00", "#e08a0088", 3.5),
    "rejected": ("#d22", "#dd222288", 3.5),
}


def svg_map(shapes: list[Shape]) -> str:
    """The shapes on an equirectangular map (x scaled by cos(latitude)), as inline SVG."""
    import shapely

    shapes = [s for s in shapes if s.geometry is not None and not s.geometry.is_empty]
    if not shapes:
        return '<p class="note">No geometries to draw.</p>'
    bounds = shapely.bounds([s.geometry for s in shapes])
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    if not all(map(math.isfinite, (west, south, east, north))):
        return '<p class="note">No drawable geometries.</p>'
    k = math.cos(math.radians((south + north) / 2)) or 1.0
    span_x, span_y = max((east - west) * k, 1e-9), max(north - south, 1e-9)
    height = int(min(HEIGHT, max(240, (WIDTH - 40) * span_y / span_x + 40)))
    scale = min((WIDTH - 40) / span_x, (height - 40) / span_y)

    def xy(lon: float, lat: float) -> str:
        return f"{20 + (lon - west) * k * scale:.1f},{height - 20 - (lat - south) * scale:.1f}"

    parts = []
    order = {"current": 0, "accepted": 1, "repaired": 2, "rejected": 3}
    for shape in sorted(shapes, key=lambda s: order[s.kind]):
        stroke, fill, radius = _STYLE[shape.kind]
        title = f"<title>{html.escape(shape.kind + ': ' + shape.label)}</title>"
        for part in shapely.get_parts(shape.geometry):
            kind = part.geom_type
            if kind == "Point":
                x, y = xy(part.x, part.y).split(",")
                parts.append(
                    f'<circle cx="{x}" cy="{y}" r="{radius}" fill="{stroke}">{title}</circle>'
                )
            elif kind == "LineString":
                d = "M" + " L".join(xy(*c[:2]) for c in part.coords)
                parts.append(
                    f'<path d="{d}" fill="none" stroke="{stroke}" stroke-width="1.5">{title}</path>'
                )
            elif kind == "Polygon":
                rings = [part.exterior, *part.interiors]
                d = " ".join("M" + " L".join(xy(*c[:2]) for c in r.coords) + " Z" for r in rings)
                parts.append(
                    f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="0.8" '
                    f'fill-rule="evenodd">{title}</path>'
                )
    names = {
        "current": "unchanged (current)",
        "accepted": "written by this run",
        "repaired": "repaired",
        "rejected": "rejected",
    }
    legend = " ".join(
        f'<span class="key" style="background:{_STYLE[k][0]}"></span>{names[k]} '
        f"({sum(1 for s in shapes if s.kind == k)})"
        for k in names
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="map of the run">'
        f'<rect width="100%" height="100%" fill="#f6f6f2"/>{"".join(parts)}</svg>'
        f'<p class="legend">{legend} — extent {west:.4f}–{east:.4f} E, '
        f"{south:.4f}–{north:.4f} N</p>"
    )


def _table(head: list[str], rows: Sequence[Sequence[Any]]) -> str:
    e = html.escape
    header = "".join(f"<th>{e(str(h))}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{e('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top} th{background:#f0f0f0} .num td{text-align:right}
.status{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff}
.succeeded{background:#2a8a3a}.failed,.rejected{background:#c62828}.skipped{background:#777}
.running{background:#e08a00} .note{color:#666} .key{display:inline-block;width:10px;height:10px;
margin:0 4px 0 10px;border-radius:2px} svg{border:1px solid #ccc;max-width:100%;height:auto}
"""


def render(report: Report) -> str:
    """The page, one string with everything inline."""
    e = html.escape
    run = report.run
    options = run["options"] or {}
    counts = [
        [name, run[name] if run[name] is not None else ""]
        for name in (
            "rows_read", "added", "updated", "unchanged", "retired", "rejected", "repaired"
        )
    ]  # fmt: skip
    sections = [
        f"<h1>Run {run['run_id']} of job {e(run['job'])}</h1>",
        f'<p><span class="status {e(run["status"])}">{e(run["status"])}</span> '
        f"started {run['started_at']:%Y-%m-%d %H:%M:%S}"
        + (f", finished {run['finished_at']:%H:%M:%S}" if run["finished_at"] else "")
        + (f" — target {e(report.table)}" if report.table else "")
        + "</p>",
    ]
    if run["message"]:
        sections.append(f"<p><strong>Message:</strong> {e(run['message'])}</p>")
    sections.append("<h2>Counts</h2>" + _table(["count", "rows"], counts))
    sections.append("<h2>Rejected rows per reason</h2>")
    if report.reasons:
        sections.append(_table(["reason", "rows", "first example"], report.reasons))
    else:
        sections.append('<p class="note">No row was rejected.</p>')
    sections.append("<h2>Map: accepted, repaired and rejected rows</h2>" + svg_map(report.shapes))
    sections.append("<h2>Detection evidence</h2>")
    sections.append(
        _table(
            ["file", "bytes", "sha256", "modified", "encoding", "source.srid"],
            [[s[0], s[1], s[2][:16] + "…", s[3], s[4], s[5]] for s in report.sources],
        )
    )
    encodings = options.get("encodings") or {}
    if encodings:
        sections.append(
            _table(
                ["file", "text encoding", "evidence"],
                [[p, v.get("encoding"), v.get("evidence")] for p, v in encodings.items()],
            )
        )
    crs = options.get("crs") or {}
    if crs:
        sections.append(
            _table(
                ["file", "the file's own CRS", "source.srid", "agrees", "offset (m)", "note"],
                [
                    [p, v["file_crs"], v["spec_srid"], v["agrees"], v["offset_m"], v["note"]]
                    for p, v in crs.items()
                ],
            )
        )
    warnings = options.get("warnings") or []
    if warnings:
        sections.append("<h3>Warnings (kept rows)</h3>")
        sections.append(
            _table(
                ["file", "row", "key", "warning"],
                [
                    [w["path"].rsplit("/", 1)[-1], w["row"], w["key"], w["warning"]]
                    for w in warnings
                ],
            )
        )
    repairs = options.get("repairs") or []
    if repairs:
        sections.append("<h3>Repaired geometries</h3>")
        sections.append(
            _table(
                ["file", "row", "key", "was invalid because"],
                [[r["path"].rsplit("/", 1)[-1], r["row"], r["key"], r["why"]] for r in repairs],
            )
        )
    sections.append("<h2>Changes against the previous state, per commune</h2>")
    if report.diff:
        total: tuple[Any, ...] = (
            "all communes",
            sum(r[1] for r in report.diff),
            sum(r[2] for r in report.diff),
            sum(r[3] for r in report.diff),
        )
        sections.append(_table(["commune", "added", "changed", "retired"], [*report.diff, total]))
    else:
        sections.append(f'<p class="note">{e(report.diff_note or "No change.")}</p>')
    if report.rejects:
        shown = report.rejects[:500]
        sections.append(f"<h2>Rejected rows ({len(report.rejects)})</h2>")
        sections.append(
            _table(
                ["file", "row", "key", "reason"],
                [[p.rsplit("/", 1)[-1], n, k, r] for p, n, k, r in shown],
            )
        )
        if len(report.rejects) > len(shown):
            sections.append(
                f'<p class="note">{len(report.rejects) - len(shown)} more: '
                f"<code>sdi etl report {run['run_id']} --csv -</code></p>"
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Run {run['run_id']} — {e(run['job'])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )


def rejects_csv(report: Report) -> str:
    """The rejected rows as CSV text (file, row, key, reason)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["source_path", "row_number", "natural_key", "reason"])
    writer.writerows(report.rejects)
    return out.getvalue()


def html_report(conn: psycopg.Connection, run_id: int, settings: Settings | None = None) -> str:
    return render(collect(conn, run_id, settings))
