"""What only a table's owner may do, done for the ETL role: statistics and bulk-load indexes.

The ETL connects as ``<prefix>_etl``, which owns no table (``docs/security.md``), and on
PostgreSQL 15 only a table's owner may ``ANALYZE`` it: the role's ``ANALYZE`` after a load was
skipped with a warning, leaving the planner the statistics of the table before the load (an
order of magnitude slower derived queries right after a first load,
``docs/etl-performance.md``). ``etl.analyze(regclass)`` runs it as the owner, for the tables
of the warehouse schemas only, and only the ETL role may call it (``sdi.db.roles``).

The same holds for the indexes of an empty target: dropping them before a first load and
building them once after it is faster than maintaining them row by row (a GiST index: about
7 s per million parcels), but only the owner may drop and create them.
``etl.suspend_indexes(regclass, text[])`` drops the indexes of an empty warehouse table but its
primary key (of the access methods given, or all), keeping their definitions — read from the
catalog by the function itself — in a temporary table of the owner's that the caller cannot
write; ``etl.restore_indexes(regclass)`` makes them again. Both inside the load's transaction:
a rollback brings the indexes back.

Revision ID: 0012d
Revises: 0012c
"""

from alembic import op

revision = "0012d"
down_revision = "0012c"
branch_labels = None
depends_on = None

# the functions act on the warehouse's tables only, never on auth's or the job queue's
_WAREHOUSE_ONLY = """
            IF (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.oid = relation) NOT IN
               ('admin', 'land', 'construction', 'utility', 'hazard', 'planning', 'ops', 'etl')
            THEN
                RAISE EXCEPTION '% is not a table of the warehouse', relation;
            END IF;"""


# the definitions are kept in a temporary table of the owner's (current_user inside the
# functions): one the caller made under that name beforehand would let it choose them
_OWN_TEMP = """
            IF to_regclass('pg_temp.sdi_suspended_indexes') IS NOT NULL AND (
                SELECT relowner FROM pg_class
                WHERE oid = to_regclass('pg_temp.sdi_suspended_indexes')
            ) <> (SELECT oid FROM pg_roles WHERE rolname = current_user) THEN
                RAISE EXCEPTION 'pg_temp.sdi_suspended_indexes is not the owner''s';
            END IF;"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION etl.analyze(relation regclass) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            {_WAREHOUSE_ONLY}
            EXECUTE format('ANALYZE %s', relation);
        END
        $$
        """
    )
    op.execute("REVOKE EXECUTE ON FUNCTION etl.analyze(regclass) FROM PUBLIC")
    op.execute(
        f"""
        CREATE FUNCTION etl.suspend_indexes(relation regclass, methods text[]) RETURNS SETOF text
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            r record;
            empty boolean;
        BEGIN
            {_WAREHOUSE_ONLY}
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s)', relation) INTO empty;
            IF NOT empty THEN
                RETURN;
            END IF;
            {_OWN_TEMP}
            CREATE TEMP TABLE IF NOT EXISTS sdi_suspended_indexes (
                relation regclass, definition text
            ) ON COMMIT DROP;
            FOR r IN
                SELECT n.nspname, c.relname,
                       -- a partitioned table's index reads "ON ONLY": made again so, it
                       -- would be an invalid index on the parent alone
                       regexp_replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') AS def
                FROM pg_index i
                JOIN pg_class c ON c.oid = i.indexrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                JOIN pg_am a ON a.oid = c.relam
                WHERE i.indrelid = relation AND NOT i.indisprimary
                  AND (methods IS NULL OR a.amname = ANY (methods))
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            LOOP
                INSERT INTO pg_temp.sdi_suspended_indexes VALUES (relation, r.def);
                EXECUTE format('DROP INDEX %I.%I', r.nspname, r.relname);
                RETURN NEXT r.def;
            END LOOP;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION etl.restore_indexes(relation regclass) RETURNS integer
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            r record;
            made integer := 0;
        BEGIN
            {_WAREHOUSE_ONLY}
            IF to_regclass('pg_temp.sdi_suspended_indexes') IS NULL THEN
                RETURN 0;
            END IF;
            {_OWN_TEMP}
            FOR r IN DELETE FROM pg_temp.sdi_suspended_indexes s
                     WHERE s.relation = restore_indexes.relation RETURNING s.definition
            LOOP
                EXECUTE r.definition;
                made := made + 1;
            END LOOP;
            RETURN made;
        END
        $$
        """
    )
    for signature in ("suspend_indexes(regclass, text[])", "restore_indexes(regclass)"):
        op.execute(f"REVOKE EXECUTE ON FUNCTION etl.{signature} FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS etl.restore_indexes(regclass)")
    op.execute("DROP FUNCTION IF EXISTS etl.suspend_indexes(regclass, text[])")
    op.execute("DROP FUNCTION IF EXISTS etl.analyze(regclass)")
