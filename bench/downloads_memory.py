"""Peak memory and time of a download (``sdi.api.downloads.export``) of N features, per format.

``./dev bench downloads_memory [--features 100000] [--database-url URL]``

Creates ``bench_downloads.parcels`` (N parcel-like polygons with Vietnamese text, a text
array, a date-time, numbers) in the bench database (``sdi_bench``, bench/common.py), then
exports it once per format in a child process of its own and reports the child's peak RSS
(``wait4``) against a baseline child that imports and plans the same download without
fetching a row. What the export adds over the baseline is what a download costs a server
worker; it should not grow with N (one batch of rows at a time).
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.common import RESULTS, bench_database, say, timed

CHILD = """
import sys, tempfile
from pathlib import Path
from sdi.api import downloads
from sdi.layers import Layer
layer = Layer("bench_parcels", Path("bench"), "bench", "", "bench_downloads.parcels",
              ("parcel_no", "commune_code", "address", "land_use_codes", "area_m2", "surveyed_at"))
fmt = sys.argv[1]
if fmt == "baseline":  # everything an export loads (GDAL, Arrow), no row fetched
    import pyarrow, pyogrio
    pyogrio.list_drivers()
    downloads.plan(layer, downloads.Query())
else:
    out = Path(tempfile.mkdtemp()) / f"x.{fmt}"
    n = downloads.export(layer.id, {}, fmt, out, layers=[layer])
    print(n, out.stat().st_size)
"""

TABLE = """
DROP SCHEMA IF EXISTS bench_downloads CASCADE;
CREATE SCHEMA bench_downloads;
CREATE TABLE bench_downloads.parcels AS
SELECT i::bigint AS id,
       'TĐ-' || lpad(i::text, 7, '0') AS parcel_no,
       (22240 + i % 50)::text AS commune_code,
       'Số ' || i || ', đường Trần Hưng Đạo, phường Hồng Gai, Hạ Long' AS address,
       ARRAY['ODT', 'CLN'] AS land_use_codes,
       (100 + i % 900)::numeric(12, 2) AS area_m2,
       now() - make_interval(days => i % 900) AS surveyed_at,
       ST_SetSRID(ST_Buffer(ST_MakePoint(107.0 + (i % 1000) * 0.0005,
                                         20.9 + (i / 1000) * 0.0005), 0.0002, 2), 4326) AS geom
FROM generate_series(1, %(n)s) AS i;
ANALYZE bench_downloads.parcels;
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench downloads_memory")
    parser.add_argument("--features", type=int, default=100_000)
    parser.add_argument("--database-url")
    args = parser.parse_args(argv)
    import os

    import psycopg

    url = bench_database(args.database_url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE.replace("%(n)s", str(int(args.features))))
    say(f"bench_downloads.parcels: {args.features} features")
    env = dict(os.environ, SDI_DATABASE_URL=url)
    rows = []
    for fmt in ("baseline", "geojson", "csv", "gpkg", "shp"):
        result = timed([sys.executable, "-c", CHILD, fmt], env=env)
        if result.returncode != 0:
            say(result.stderr[-2000:])
            return 1
        count, size = [*result.stdout.split(), "", ""][:2] if fmt != "baseline" else ("", "")
        rows.append(
            {
                "format": fmt,
                "features": int(count) if count else None,
                "file_mb": round(int(size) / 2**20, 1) if size else None,
                "seconds": round(result.seconds, 1),
                "peak_rss_mb": round(result.max_rss_bytes / 2**20, 1),
                "load": result.load_before,
            }
        )
        say(json.dumps(rows[-1]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "downloads_memory.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| format | features | file MB | seconds | peak RSS MB | load |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['format']} | {r['features'] or ''} | {r['file_mb'] or ''} | {r['seconds']} "
        f"| {r['peak_rss_mb']} | {r['load']} |"
        for r in rows
    ]
    (RESULTS / "downloads_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
