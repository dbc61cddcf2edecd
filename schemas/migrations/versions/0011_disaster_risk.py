"""Disaster risk levels of Decision 18/2021/QĐ-TTg for every hazard (issue 15).

Inputs, delivered by the ETL like the water levels:

- ``hazard.rain_gauges``: the rain-gauge network (a feature table with 0001's layout);
- ``hazard.rain_readings``: hourly rainfall per gauge (mm in the hour ending at
  ``observed_at``), a time series like ``hazard.gauge_readings``;
- ``hazard.typhoon_track``: typhoon forecast bulletins, one row per track point (time,
  centre, maximum wind on the Beaufort scale, radii of level-6 and level-10 winds), keyed by
  storm, issue time and valid time: a newer bulletin supersedes the previous one, which is kept.

One warning model for every hazard (DESIGN.md), written by ``sdi.hazard.risk.recompute``:

- ``hazard.risk_levels``: one versioned record per hazard and area (a commune, a landslide or
  surge zone, a flood warning's zones) with its level 1–5, the rule and article that gave it,
  the measures it was judged on and the exposure; ``hazard.risk_levels_current`` the active
  ones, ``hazard.risk_levels_as_of(t)`` any instant;
- ``hazard.risk_level_history``: raise, escalation, de-escalation and clear events;
- ``hazard.combined_levels``: per commune, the combined level of Article 4 clause 4 and the
  hazards that made it (versioned the same way);
- ``hazard.commune_rainfall``: the accumulations per commune at the last recompute;
- ``hazard.cap_messages``: every CAP 1.2 message issued (alert, update, cancel), kept;
- ``hazard.evacuation_list``: residential buildings in active surge and landslide areas, rebuilt
  by every recompute (internal).

Revision ID: 0011
Revises: 0008
"""

from alembic import op

from sdi.db.tables import feature_table_sql

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def _as_of(qualified: str) -> str:
    # this migration's own text (no comment, other indentation than
    # sdi.db.tables.as_of_function_sql): kept, so the DDL stays what it always was
    return f"""
        CREATE FUNCTION {qualified}_as_of(at timestamptz) RETURNS SETOF {qualified}
        LANGUAGE sql STABLE AS $$
            SELECT * FROM {qualified}
            WHERE valid_from <= at AND (valid_to IS NULL OR valid_to > at)
        $$;
    """


def upgrade() -> None:
    # the shared DDL of every feature table (0001's text, tests/db/test_generated_tables.py)
    op.execute("CREATE SEQUENCE hazard.rain_gauges_id_seq")
    op.execute(
        feature_table_sql(
            "hazard.rain_gauges",
            "Point",
            """gauge_code text NOT NULL,
            name text,
            elevation_m double precision""",
        )
    )
    op.execute("ALTER TABLE hazard.rain_gauges ADD COLUMN source_hash bigint")
    op.execute("ALTER TABLE hazard.rain_gauges DROP CONSTRAINT IF EXISTS rain_gauges_run_id_fkey")
    op.execute(_as_of("hazard.rain_gauges"))
    op.execute(
        """
        CREATE TABLE hazard.rain_readings (
            gauge_code text NOT NULL,
            observed_at timestamptz NOT NULL,
            rain_mm double precision NOT NULL,
            run_id bigint NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (gauge_code, observed_at)
        );
        CREATE INDEX rain_readings_time ON hazard.rain_readings (observed_at);
        COMMENT ON COLUMN hazard.rain_readings.rain_mm IS
            'Rainfall in the hour ending at observed_at, mm';

        CREATE TABLE hazard.typhoon_track (
            storm_code text NOT NULL,
            storm_name text,
            issued_at timestamptz NOT NULL,
            valid_at timestamptz NOT NULL,
            lon double precision NOT NULL,
            lat double precision NOT NULL,
            max_wind_level smallint NOT NULL CHECK (max_wind_level BETWEEN 0 AND 18),
            gust_level smallint,
            r6_km double precision NOT NULL DEFAULT 0 CHECK (r6_km >= 0),
            r10_km double precision CHECK (r10_km >= 0),
            run_id bigint NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (storm_code, issued_at, valid_at)
        );
        COMMENT ON TABLE hazard.typhoon_track IS
            'Typhoon forecast bulletins: one row per track point; the latest issued_at of a '
            'storm is its current bulletin, earlier ones are kept';

        CREATE SEQUENCE hazard.risk_levels_id_seq;
        CREATE TABLE hazard.risk_levels (
            version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id bigint NOT NULL,
            natural_key text NOT NULL,
            hazard text NOT NULL,
            area_kind text NOT NULL,
            area_code text NOT NULL,
            area_name text,
            commune_code varchar(5),
            communes text[] NOT NULL DEFAULT '{}',
            admin_vintage text NOT NULL DEFAULT '2025',
            level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
            level_label text NOT NULL,
            colour text NOT NULL,
            rule text NOT NULL,
            article text NOT NULL,
            reason text NOT NULL,
            measures jsonb NOT NULL DEFAULT '{}',
            source text,
            observed_at timestamptz,
            raised_at timestamptz NOT NULL,
            level_since timestamptz NOT NULL,
            buildings integer NOT NULL DEFAULT 0,
            residential_floors integer NOT NULL DEFAULT 0,
            residents_estimate integer NOT NULL DEFAULT 0,
            critical_facilities integer NOT NULL DEFAULT 0,
            exposure jsonb NOT NULL DEFAULT '{}',
            geom geometry(MultiPolygon, 4326),
            run_id bigint NOT NULL,
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            row_hash uuid NOT NULL
        );
        CREATE UNIQUE INDEX risk_levels_current_key ON hazard.risk_levels (natural_key)
            WHERE valid_to IS NULL;
        CREATE INDEX risk_levels_id ON hazard.risk_levels (id);
        CREATE INDEX risk_levels_valid ON hazard.risk_levels (valid_from, valid_to);
        CREATE INDEX risk_levels_geom ON hazard.risk_levels USING gist (geom);
        CREATE VIEW hazard.risk_levels_current AS
            SELECT * FROM hazard.risk_levels WHERE valid_to IS NULL;

        CREATE TABLE hazard.risk_level_history (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            natural_key text NOT NULL,
            risk_id bigint NOT NULL,
            hazard text NOT NULL,
            area_kind text NOT NULL,
            area_code text NOT NULL,
            area_name text,
            commune_code varchar(5),
            admin_vintage text NOT NULL DEFAULT '2025'
                CHECK (admin_vintage IN ('pre2025', '2025')),
            communes text[] NOT NULL DEFAULT '{}',
            event text NOT NULL
                CHECK (event IN ('raised', 'escalated', 'de-escalated', 'cleared')),
            level_from smallint NOT NULL,
            level_to smallint NOT NULL,
            colour text,
            rule text,
            article text,
            reason text NOT NULL,
            measures jsonb NOT NULL DEFAULT '{}',
            residents_estimate integer NOT NULL DEFAULT 0,
            buildings integer NOT NULL DEFAULT 0,
            geom geometry(MultiPolygon, 4326),
            run_id bigint NOT NULL,
            valid_from timestamptz NOT NULL,
            valid_to timestamptz
        );
        CREATE INDEX risk_level_history_key ON hazard.risk_level_history (natural_key, id);

        CREATE SEQUENCE hazard.combined_levels_id_seq;
        CREATE TABLE hazard.combined_levels (
            version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id bigint NOT NULL,
            natural_key text NOT NULL,
            commune_code varchar(5) NOT NULL,
            commune_name text,
            admin_vintage text NOT NULL DEFAULT '2025',
            level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
            level_label text NOT NULL,
            colour text NOT NULL,
            highest_hazard_level smallint NOT NULL,
            raised_by smallint NOT NULL DEFAULT 0,
            hazards jsonb NOT NULL,
            hazard_names text[] NOT NULL,
            reason text NOT NULL,
            geom geometry(MultiPolygon, 4326),
            run_id bigint NOT NULL,
            valid_from timestamptz NOT NULL,
            valid_to timestamptz,
            row_hash uuid NOT NULL
        );
        CREATE UNIQUE INDEX combined_levels_current_key ON hazard.combined_levels (natural_key)
            WHERE valid_to IS NULL;
        CREATE INDEX combined_levels_id ON hazard.combined_levels (id);
        CREATE INDEX combined_levels_valid ON hazard.combined_levels (valid_from, valid_to);
        CREATE INDEX combined_levels_geom ON hazard.combined_levels USING gist (geom);
        CREATE INDEX risk_level_history_geom ON hazard.risk_level_history USING gist (geom);
        CREATE VIEW hazard.combined_levels_current AS
            SELECT * FROM hazard.combined_levels WHERE valid_to IS NULL;

        CREATE TABLE hazard.commune_rainfall (
            commune_code varchar(5) PRIMARY KEY,
            commune_name text,
            gauge_code text,
            gauge_distance_m double precision,
            method text NOT NULL,
            reference_at timestamptz,
            r1_mm double precision, r3_mm double precision, r6_mm double precision,
            r12_mm double precision, r24_mm double precision, r48_mm double precision,
            r72_mm double precision,
            geom geometry(MultiPolygon, 4326),
            computed_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE hazard.cap_messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            identifier text NOT NULL UNIQUE,
            natural_key text NOT NULL,
            risk_id bigint NOT NULL,
            msg_type text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
            sent timestamptz NOT NULL,
            level smallint NOT NULL,
            "references" text,
            xml text NOT NULL,
            run_id bigint NOT NULL
        );
        CREATE INDEX cap_messages_key ON hazard.cap_messages (natural_key, id);

        CREATE TABLE hazard.evacuation_list (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            risk_key text NOT NULL,
            hazard text NOT NULL,
            level smallint NOT NULL,
            area_code text NOT NULL,
            building_id bigint NOT NULL,
            building_code text,
            building_name text,
            floors integer,
            residents_estimate integer NOT NULL,
            commune_code varchar(5),
            geom geometry(MultiPolygon, 4326),
            computed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX evacuation_list_geom ON hazard.evacuation_list USING gist (geom);
        """
    )
    for qualified in ("hazard.risk_levels", "hazard.combined_levels"):
        op.execute(_as_of(qualified))


def downgrade() -> None:
    op.execute(
        """
        DROP FUNCTION IF EXISTS hazard.combined_levels_as_of(timestamptz);
        DROP FUNCTION IF EXISTS hazard.risk_levels_as_of(timestamptz);
        DROP FUNCTION IF EXISTS hazard.rain_gauges_as_of(timestamptz);
        DROP TABLE IF EXISTS hazard.evacuation_list;
        DROP TABLE IF EXISTS hazard.cap_messages;
        DROP TABLE IF EXISTS hazard.commune_rainfall;
        DROP VIEW IF EXISTS hazard.combined_levels_current;
        DROP TABLE IF EXISTS hazard.combined_levels;
        DROP SEQUENCE IF EXISTS hazard.combined_levels_id_seq;
        DROP TABLE IF EXISTS hazard.risk_level_history;
        DROP VIEW IF EXISTS hazard.risk_levels_current;
        DROP TABLE IF EXISTS hazard.risk_levels;
        DROP SEQUENCE IF EXISTS hazard.risk_levels_id_seq;
        DROP TABLE IF EXISTS hazard.typhoon_track;
        DROP TABLE IF EXISTS hazard.rain_readings;
        DROP VIEW IF EXISTS hazard.rain_gauges_current;
        DROP TABLE IF EXISTS hazard.rain_gauges;
        DROP SEQUENCE IF EXISTS hazard.rain_gauges_id_seq;
        """
    )
