"""Contributions of several departments to one table, and as-of queries over history.

- ``etl.contributions`` keeps what each source delivered for a feature of a shared target
  (e.g. buildings from the construction department and from the survey office), with its own
  history, so the values that lose under the merge rule are kept, not lost.
- ``etl.run_time(run_id)`` gives the instant a run's changes took effect, and
  ``<table>_as_of(timestamptz)`` the state of a feature table at any instant:
  ``SELECT * FROM land.parcels_as_of(etl.run_time(42))``.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from sdi.db.tables import as_of_function_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

HISTORY_TABLES = (
    "admin.communes",
    "land.parcels",
    "land.zoning",
    "construction.buildings",
    "construction.permits",
    "utility.street_lamps",
    "utility.wifi_hotspots",
    "utility.cameras",
    "utility.water_pipes",
    "utility.env_sensors",
    "hazard.flood_zones",
    "hazard.gauges",
    "hazard.rasters",
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE etl.contributions (
            contribution_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            target text NOT NULL,
            source text NOT NULL,
            natural_key text NOT NULL,
            attributes jsonb NOT NULL,
            geom geometry(Geometry, 4326),
            run_id bigint NOT NULL REFERENCES etl.runs (run_id),
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            row_hash uuid NOT NULL
        );
        CREATE UNIQUE INDEX contributions_current_key
            ON etl.contributions (target, source, natural_key) WHERE valid_to IS NULL;
        CREATE INDEX contributions_target_key ON etl.contributions (target, natural_key);
        CREATE INDEX contributions_run ON etl.contributions (run_id);

        CREATE FUNCTION etl.run_time(run bigint) RETURNS timestamptz
        LANGUAGE sql STABLE AS $$
            SELECT finished_at FROM etl.runs WHERE run_id = run AND status = 'succeeded'
        $$;
        COMMENT ON FUNCTION etl.run_time(bigint) IS
            'When a successful run''s changes took effect: use with <table>_as_of()';
        """
    )
    for table in HISTORY_TABLES:
        op.execute(as_of_function_sql(table))  # the shared function, same text as always


def downgrade() -> None:
    for table in HISTORY_TABLES:
        op.execute(f"DROP FUNCTION IF EXISTS {table}_as_of(timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS etl.run_time(bigint)")
    op.execute("DROP TABLE IF EXISTS etl.contributions")
