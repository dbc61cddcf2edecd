"""Merge staged rows into a target table, inside the run's single transaction.

- ``history``: a feature whose attributes or geometry changed gets a new version (the old one
  is closed with ``valid_to``); new features are added; current features missing from the
  delivery are retired; unchanged ones are not touched.
- ``append``: a time series keyed by the table's primary key; repeated rows are ignored,
  corrected values replace the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from sdi.etl.stage import STAGE_TABLE, TargetTable


@dataclass
class MergeCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0


def _geometry_expression(target: TargetTable, alias: str) -> sql.Composable:
    geom = sql.Identifier(alias, "geom")
    if target.geometry_type and target.geometry_type.startswith("MULTI"):
        return sql.SQL("ST_Multi({})").format(geom)
    return geom


def _row_hash(columns: list[str], alias: str) -> sql.Composable:
    """md5 of every staged value: equal hashes mean nothing changed."""
    values = sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns)
    return sql.SQL("md5(ROW({})::text)::uuid").format(values)


def merge_history(
    conn: psycopg.Connection, target: TargetTable, columns: list[str], run_id: int, staged: int
) -> MergeCounts:
    attributes = [c for c in columns if c != "geom"]
    insert_columns = sql.SQL(", ").join(
        map(sql.Identifier, [*attributes, "geom", "run_id", "valid_from", "row_hash"])
    )
    values = sql.SQL(", ").join(
        [
            *(sql.Identifier("s", c) for c in attributes),
            _geometry_expression(target, "s"),
            sql.Literal(run_id),
            sql.SQL("now()"),
            _row_hash(columns, "s"),
        ]
    )
    table = target.qualified
    stage = sql.Identifier(STAGE_TABLE)

    changed = conn.execute(
        sql.SQL(
            """
            WITH closed AS (
                UPDATE {table} t SET valid_to = now()
                FROM {stage} s
                WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL
                  AND t.row_hash <> {hash}
                RETURNING t.id, t.natural_key
            )
            INSERT INTO {table} (id, {insert_columns})
            SELECT c.id, {values} FROM {stage} s JOIN closed c USING (natural_key)
            """
        ).format(
            table=table,
            stage=stage,
            hash=_row_hash(columns, "s"),
            insert_columns=insert_columns,
            values=values,
        )
    ).rowcount

    added = conn.execute(
        sql.SQL(
            """
            INSERT INTO {table} ({insert_columns})
            SELECT {values} FROM {stage} s
            WHERE NOT EXISTS (
                SELECT 1 FROM {table} t WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL
            )
            """
        ).format(table=table, stage=stage, insert_columns=insert_columns, values=values)
    ).rowcount

    retired = conn.execute(
        sql.SQL(
            """
            UPDATE {table} t SET valid_to = now()
            WHERE t.valid_to IS NULL
              AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE s.natural_key = t.natural_key)
            """
        ).format(table=table, stage=stage)
    ).rowcount
    return MergeCounts(
        added=added, updated=changed, unchanged=staged - added - changed, retired=retired
    )


def merge_append(
    conn: psycopg.Connection, target: TargetTable, columns: list[str], run_id: int, staged: int
) -> MergeCounts:
    keys = [c for c in target.key_columns]
    values = [c for c in columns if c not in keys and c != "natural_key"]
    staged_columns = [c for c in columns if c != "natural_key"]
    insert = sql.SQL(", ").join(map(sql.Identifier, [*staged_columns, "run_id"]))
    select = sql.SQL(", ").join([*(sql.Identifier(c) for c in staged_columns), sql.Literal(run_id)])
    key_list = sql.SQL(", ").join(map(sql.Identifier, keys))
    updates = sql.SQL(", ").join(
        [
            *(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in values),
            sql.SQL("run_id = EXCLUDED.run_id"),
            sql.SQL("loaded_at = now()"),
        ]
    )
    changed_condition = sql.SQL(" OR ").join(
        sql.SQL("t.{0} IS DISTINCT FROM EXCLUDED.{0}").format(sql.Identifier(c)) for c in values
    )
    added, updated = conn.execute(
        sql.SQL(
            """
            WITH written AS (
                INSERT INTO {table} AS t ({insert})
                SELECT DISTINCT ON ({keys}) {select} FROM {stage} ORDER BY {keys}
                ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {changed}
                RETURNING (xmax = 0) AS inserted
            )
            SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
            FROM written
            """
        ).format(
            table=target.qualified,
            insert=insert,
            select=select,
            keys=key_list,
            stage=sql.Identifier(STAGE_TABLE),
            updates=updates,
            changed=changed_condition,
        )
    ).fetchone()
    return MergeCounts(added=added, updated=updated, unchanged=staged - added - updated)


def merge(
    conn: psycopg.Connection,
    mode: str,
    target: TargetTable,
    columns: list[str],
    run_id: int,
    staged: int,
) -> MergeCounts:
    # Writers of one table queue here; readers are never blocked (SHARE ROW EXCLUSIVE).
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target.qualified))
    if mode == "append":
        return merge_append(conn, target, columns, run_id, staged)
    return merge_history(conn, target, columns, run_id, staged)
