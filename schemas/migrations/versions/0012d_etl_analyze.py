"""The ETL role refreshes the statistics of what it loaded (issue 13's roles, issue 14's loads).

The ETL connects as ``<prefix>_etl``, which owns no table (``docs/security.md``), and on
PostgreSQL 15 only a table's owner may ``ANALYZE`` it: the role's ``ANALYZE`` after a load was
skipped with a warning, leaving the planner the statistics of the table before the load (an
order of magnitude slower derived queries right after a first load,
``docs/etl-performance.md``). ``etl.analyze(regclass)`` runs it as the owner, for the tables
of the warehouse schemas only, and only the ETL role may call it (``sdi.db.roles``).

Revision ID: 0012d
Revises: 0012c
"""

from alembic import op

revision = "0012d"
down_revision = "0012c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION etl.analyze(relation regclass) RETURNS void
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            IF (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.oid = relation) NOT IN
               ('admin', 'land', 'construction', 'utility', 'hazard', 'planning', 'ops', 'etl')
            THEN
                RAISE EXCEPTION '% is not a table of the warehouse', relation;
            END IF;
            EXECUTE format('ANALYZE %s', relation);
        END
        $$
        """
    )
    op.execute("REVOKE EXECUTE ON FUNCTION etl.analyze(regclass) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS etl.analyze(regclass)")
