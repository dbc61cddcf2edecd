"""Flood warnings derived from gauge readings: current warnings, their versions and events.

A warning concerns one gauge: it is active while the gauge's latest reading is at or above
alarm level I, and it covers the flood zones linked to that gauge for the level reached
(see ``sdi/hazard/model.py`` and ``docs/warnings.md``). ``sdi.hazard.warnings.recompute``
rebuilds it after every load of an input table, inside the load's transaction.

- ``hazard.warnings`` is versioned like every feature table: ``id`` is the warning (one
  episode of one gauge, from raise to clear), ``natural_key`` the gauge code, one row per
  version; a version is closed (``valid_to``) when the warning changes (a new reading, a new
  level, new exposure) or is cleared. ``hazard.warnings_current`` holds the active warnings
  (published); ``hazard.warnings_as_of(t)`` the warnings active at any instant.
- ``hazard.warning_history`` is the event log: one row per raise, escalation,
  de-escalation and clear, valid from the event until the next event of the same gauge.
- ``hazard.warning_recomputes`` records what each recompute did and how long it took.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Exposure columns shared by warnings (current state) and events (a snapshot at the event).
_EXPOSURE = """
        zone_codes text[] NOT NULL DEFAULT '{}',
        buildings integer NOT NULL DEFAULT 0,
        residents_estimate integer NOT NULL DEFAULT 0,
        critical_facilities integer NOT NULL DEFAULT 0,
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE SEQUENCE hazard.warnings_id_seq;

        CREATE TABLE hazard.warnings (
            version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id bigint NOT NULL,
            natural_key text NOT NULL,
            commune_code varchar(5),
            admin_vintage text NOT NULL DEFAULT '2025'
                CHECK (admin_vintage IN ('pre2025', '2025')),
            gauge_code text NOT NULL,
            gauge_name text,
            river text,
            level smallint NOT NULL CHECK (level BETWEEN 1 AND 3),
            level_label text NOT NULL,
            water_level_m double precision NOT NULL,
            observed_at timestamptz NOT NULL,
            threshold_m double precision NOT NULL,
            next_threshold_m double precision,
            alarm_since timestamptz NOT NULL,
            level_since timestamptz NOT NULL,
            peak_water_level_m double precision NOT NULL,
            peak_at timestamptz NOT NULL,
            return_period_years integer,
            {_EXPOSURE}
            zone_area_m2 double precision,
            buildings_by_use jsonb NOT NULL DEFAULT '{{}}',
            residential_floors integer NOT NULL DEFAULT 0,
            parcels integer NOT NULL DEFAULT 0,
            parcels_by_group jsonb NOT NULL DEFAULT '{{}}',
            parcel_area_by_group_m2 jsonb NOT NULL DEFAULT '{{}}',
            schools integer NOT NULL DEFAULT 0,
            health_facilities integer NOT NULL DEFAULT 0,
            state_offices integer NOT NULL DEFAULT 0,
            street_lamps integer NOT NULL DEFAULT 0,
            water_pipes_m double precision NOT NULL DEFAULT 0,
            cameras integer NOT NULL DEFAULT 0,
            detail jsonb NOT NULL DEFAULT '{{}}',
            run_id bigint NOT NULL REFERENCES etl.runs (run_id),
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            row_hash uuid NOT NULL,
            geom geometry(MultiPolygon, 4326),
            CHECK (valid_to IS NULL OR valid_to >= valid_from)
        );
        COMMENT ON TABLE hazard.warnings IS
            'Flood warnings per gauge, every version kept; see docs/warnings.md';
        CREATE UNIQUE INDEX warnings_current_key ON hazard.warnings (natural_key)
            WHERE valid_to IS NULL;
        CREATE INDEX warnings_id ON hazard.warnings (id);
        CREATE INDEX warnings_run ON hazard.warnings (run_id);
        CREATE INDEX warnings_commune ON hazard.warnings (commune_code) WHERE valid_to IS NULL;
        CREATE INDEX warnings_geom ON hazard.warnings USING gist (geom);
        CREATE VIEW hazard.warnings_current AS
            SELECT * FROM hazard.warnings WHERE valid_to IS NULL;

        CREATE FUNCTION hazard.warnings_as_of(at timestamptz) RETURNS SETOF hazard.warnings
        LANGUAGE sql STABLE AS $$
            SELECT * FROM hazard.warnings
            WHERE valid_from <= at AND (valid_to IS NULL OR valid_to > at)
        $$;
        COMMENT ON FUNCTION hazard.warnings_as_of(timestamptz) IS
            'The warnings that were active at the given instant, as they stood then';

        CREATE TABLE hazard.warning_history (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            warning_id bigint NOT NULL,
            natural_key text NOT NULL,
            commune_code varchar(5),
            admin_vintage text NOT NULL DEFAULT '2025'
                CHECK (admin_vintage IN ('pre2025', '2025')),
            gauge_code text NOT NULL,
            gauge_name text,
            event text NOT NULL
                CHECK (event IN ('raised', 'escalated', 'de-escalated', 'cleared')),
            level_from smallint NOT NULL CHECK (level_from BETWEEN 0 AND 3),
            level_to smallint NOT NULL CHECK (level_to BETWEEN 0 AND 3),
            level_label text NOT NULL,
            water_level_m double precision,
            observed_at timestamptz,
            level_since timestamptz,
            reason text NOT NULL,
            {_EXPOSURE}
            run_id bigint NOT NULL REFERENCES etl.runs (run_id),
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            geom geometry(MultiPolygon, 4326),
            CHECK (valid_to IS NULL OR valid_to >= valid_from),
            CHECK (level_from <> level_to)
        );
        COMMENT ON TABLE hazard.warning_history IS
            'Raise, escalation, de-escalation and clear of each warning; an event is valid '
            'until the next event of the same gauge';
        CREATE INDEX warning_history_key ON hazard.warning_history (natural_key, valid_from);
        CREATE UNIQUE INDEX warning_history_open ON hazard.warning_history (natural_key)
            WHERE valid_to IS NULL;
        CREATE INDEX warning_history_warning ON hazard.warning_history (warning_id);
        CREATE INDEX warning_history_run ON hazard.warning_history (run_id);
        CREATE INDEX warning_history_time ON hazard.warning_history (observed_at);
        CREATE INDEX warning_history_geom ON hazard.warning_history USING gist (geom);

        CREATE TABLE hazard.warning_recomputes (
            recompute_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id bigint NOT NULL REFERENCES etl.runs (run_id),
            trigger text NOT NULL,
            recomputed_at timestamptz NOT NULL DEFAULT now(),
            duration_ms double precision NOT NULL,
            gauges integer NOT NULL,
            active integer NOT NULL,
            raised integer NOT NULL,
            escalated integer NOT NULL,
            de_escalated integer NOT NULL,
            cleared integer NOT NULL,
            changed integer NOT NULL,
            unchanged integer NOT NULL
        );
        CREATE INDEX warning_recomputes_run ON hazard.warning_recomputes (run_id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS hazard.warning_recomputes;
        DROP TABLE IF EXISTS hazard.warning_history;
        DROP FUNCTION IF EXISTS hazard.warnings_as_of(timestamptz);
        DROP VIEW IF EXISTS hazard.warnings_current;
        DROP TABLE IF EXISTS hazard.warnings;
        DROP SEQUENCE IF EXISTS hazard.warnings_id_seq;
        """
    )
