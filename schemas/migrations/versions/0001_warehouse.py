"""Warehouse: domain schemas, ETL bookkeeping and the feature tables of the four domains.

Every feature table keeps all versions of a feature (history is never overwritten):
- ``id``: the stable feature id, shared by all versions of one feature (served as the item id);
- ``version_id``: one row = one version;
- ``natural_key``: the source's own identifier (e.g. commune + sheet + parcel number);
- ``commune_code`` + ``admin_vintage``: commune codes are reused across the 2025 reform;
- ``run_id``: the ETL run that wrote this version; ``valid_from``/``valid_to``: its lifetime;
- ``row_hash``: md5 of the attributes and geometry, for change detection;
- ``geom``: typed, SRID 4326, GiST-indexed.
A ``<table>_current`` view holds the live versions; publishing reads those views.

Revision ID: 0001
Revises:
"""

from alembic import op

from sdi.db.tables import feature_table_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMAS = ("admin", "land", "construction", "utility", "hazard", "ops", "etl")

# (schema.table, geometry type, domain columns)
FEATURE_TABLES: list[tuple[str, str, str]] = [
    (
        "admin.communes",
        "MultiPolygon",
        """commune_name text NOT NULL,
        commune_type text,
        province_code varchar(2),
        city text,
        official_area_km2 double precision,
        area_m2 double precision""",
    ),
    (
        "land.parcels",
        "MultiPolygon",
        """sheet_no integer NOT NULL,
        parcel_no integer NOT NULL,
        land_use_codes text[] NOT NULL,
        land_use_primary text,
        land_use_source text,
        declared_area_m2 double precision,
        area_m2 double precision,
        owner_name text,
        address text""",
    ),
    (
        "land.zoning",
        "MultiPolygon",
        """zone_code text NOT NULL,
        zone_name text,
        planned_land_use text,
        max_far double precision,
        max_floors integer,
        plan_id text,
        approved_on date,
        area_m2 double precision""",
    ),
    (
        "construction.buildings",
        "MultiPolygon",
        """building_code text NOT NULL,
        name text,
        use_type text,
        floors integer,
        height_m double precision,
        year_built integer,
        footprint_m2 double precision""",
    ),
    (
        "construction.permits",
        "Point",
        """permit_no text NOT NULL,
        issued_on date,
        applicant_name text,
        address text,
        floors integer,
        gross_floor_area_m2 double precision,
        status text""",
    ),
    (
        "utility.street_lamps",
        "Point",
        """lamp_code text NOT NULL,
        road_id text,
        road_name text,
        status text,
        power_w integer,
        install_year integer,
        cabinet_id text""",
    ),
    (
        "utility.wifi_hotspots",
        "Point",
        """hotspot_code text NOT NULL,
        name text,
        ssid text,
        status text,
        provider text""",
    ),
    (
        "utility.cameras",
        "Point",
        """camera_code text NOT NULL,
        name text,
        sector text,
        kind text,
        status text""",
    ),
    (
        "utility.water_pipes",
        "MultiLineString",
        """pipe_code text NOT NULL,
        diameter_mm integer,
        material text,
        install_year integer,
        pressure_zone text,
        length_m double precision""",
    ),
    (
        "utility.env_sensors",
        "Point",
        """sensor_code text NOT NULL,
        name text,
        kind text,
        status text,
        parameters text[]""",
    ),
    (
        "hazard.flood_zones",
        "MultiPolygon",
        """zone_code text NOT NULL,
        name text,
        return_period_years integer,
        depth_class text,
        gauge_code text,
        area_m2 double precision""",
    ),
    (
        "hazard.gauges",
        "Point",
        """gauge_code text NOT NULL,
        name text,
        river text,
        alarm_level_1 double precision,
        alarm_level_2 double precision,
        alarm_level_3 double precision,
        datum text""",
    ),
    (
        # Catalogue of hazard rasters stored as cloud-optimised GeoTIFFs (footprint = extent).
        "hazard.rasters",
        "Polygon",
        """name text NOT NULL,
        kind text NOT NULL,
        path text NOT NULL,
        sha256 text NOT NULL,
        source_srid integer,
        width integer,
        height integer,
        pixel_size double precision,
        nodata double precision,
        unit text""",
    ),
]


def _feature_table_sql(qualified: str, geometry_type: str, columns: str) -> str:
    # The one function every feature table's DDL comes from (declared tables use it too);
    # its text is what this migration always wrote (tests/db/test_generated_tables.py).
    return feature_table_sql(qualified, geometry_type, columns)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    op.execute(
        """
        CREATE TABLE etl.runs (
            run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('running', 'succeeded', 'failed', 'rejected', 'skipped')),
            started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished_at timestamptz,
            rows_read integer,
            added integer,
            updated integer,
            unchanged integer,
            retired integer,
            rejected integer,
            repaired integer,
            message text,
            options jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX runs_job ON etl.runs (job, started_at DESC);

        CREATE TABLE etl.run_sources (
            run_id bigint NOT NULL REFERENCES etl.runs (run_id) ON DELETE CASCADE,
            path text NOT NULL,
            sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            modified_at timestamptz,
            encoding text,
            source_srid integer,
            PRIMARY KEY (run_id, path)
        );

        -- Rows a run refused, with enough to find and fix them at the source.
        CREATE TABLE etl.rejects (
            run_id bigint NOT NULL REFERENCES etl.runs (run_id) ON DELETE CASCADE,
            source_path text NOT NULL,
            row_number integer NOT NULL,
            natural_key text,
            reason text NOT NULL,
            raw jsonb NOT NULL
        );
        CREATE INDEX rejects_run ON etl.rejects (run_id);
        """
    )

    for qualified, geometry_type, columns in FEATURE_TABLES:
        schema, table = qualified.split(".")
        op.execute(f"CREATE SEQUENCE {schema}.{table}_id_seq")
        op.execute(_feature_table_sql(qualified, geometry_type, columns))

    # Time series: append-only, one row per gauge and instant; late readings are welcome.
    op.execute(
        """
        CREATE TABLE hazard.gauge_readings (
            gauge_code text NOT NULL,
            observed_at timestamptz NOT NULL,
            water_level_m double precision NOT NULL,
            run_id bigint NOT NULL REFERENCES etl.runs (run_id),
            loaded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (gauge_code, observed_at)
        );
        CREATE INDEX gauge_readings_time ON hazard.gauge_readings (observed_at);
        """
    )


def downgrade() -> None:
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
