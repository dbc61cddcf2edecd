"""Derived planning layers and operations-centre summaries (issue 6).

Every table here is *derived*: ``sdi.planning`` rebuilds it from the warehouse after each ETL
load of one of its inputs (inside the load's transaction) and with ``sdi planning refresh``.
Rows keep the stable ``id`` of the feature they are about (parcel, building, permit, commune),
so an item of a derived layer links back to the source layer's item with the same id.
Definitions and rules: ``docs/planning.md``.

- ``planning.land_use_conflicts``: parcels whose land use the zoning plan does not permit;
- ``planning.buildings_without_permit``: buildings with no matching building permit;
- ``planning.stalled_permits``: old permits with no building at their location;
- ``planning.hazard_parcels`` / ``planning.hazard_buildings``: features in hazard zones;
- ``planning.commune_indicators``: built-up ratio, density, green space, land-use mix;
- ``planning.refreshes``: what each refresh did and how long it took;
- ``ops.commune_summary``: per-commune counts for the operations centre;
- ``utility.env_readings``: the water- and air-quality sensors' readings (time series, loaded
  by the ETL in append mode like the gauge readings).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Columns every derived feature table has: the feature's stable id, its commune with the
# administrative vintage, and the refresh that wrote the row.
_COMMON = """
    id bigint PRIMARY KEY,
    natural_key text NOT NULL,
    commune_code varchar(5),
    admin_vintage text NOT NULL DEFAULT '2025',
"""
_TAIL = """
    run_id bigint,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
"""
# The hazards a feature of planning.hazard_parcels / planning.hazard_buildings lies in.
_HAZARDS = """
        hazards text[] NOT NULL,
        flood_return_period_years integer,
        flood_depth_class text,
        flood_zone_codes text[],
        landslide_class text,
        storm_surge_class text,"""

# (table, geometry type, own columns, comment)
DERIVED: list[tuple[str, str, str, str]] = [
    (
        "planning.land_use_conflicts",
        "MultiPolygon",
        """sheet_no integer,
        parcel_no integer,
        land_use_codes text[] NOT NULL,
        conflicting_codes text[] NOT NULL,
        zone_code text NOT NULL,
        zone_name text,
        planned_land_use text NOT NULL,
        plan_id text,
        area_m2 double precision,""",
        "Parcels with a land-use code the zoning plan does not permit in their zone",
    ),
    (
        "planning.buildings_without_permit",
        "MultiPolygon",
        """building_code text NOT NULL,
        name text,
        use_type text,
        floors integer,
        year_built integer,
        footprint_m2 double precision,
        category text NOT NULL CHECK (category IN ('no_permit', 'built_before_register')),""",
        "Buildings with no matching building permit (spatial and date match)",
    ),
    (
        "planning.stalled_permits",
        "Point",
        """permit_no text NOT NULL,
        issued_on date,
        status text,
        floors integer,
        gross_floor_area_m2 double precision,
        address text,
        months_since_issue integer NOT NULL,""",
        "Permits older than the threshold with no building at their location",
    ),
    (
        "planning.hazard_parcels",
        "MultiPolygon",
        """sheet_no integer,
        parcel_no integer,
        land_use_codes text[],
        area_m2 double precision,"""
        + _HAZARDS,
        "Parcels in at least one hazard zone (flood by return period, landslide, storm surge)",
    ),
    (
        "planning.hazard_buildings",
        "MultiPolygon",
        """building_code text NOT NULL,
        name text,
        use_type text,
        floors integer,
        footprint_m2 double precision,"""
        + _HAZARDS,
        "Buildings in at least one hazard zone (flood by return period, landslide, storm surge)",
    ),
    (
        "planning.commune_indicators",
        "MultiPolygon",
        """commune_name text,
        city text,
        commune_area_m2 double precision,
        parcels integer NOT NULL,
        parcel_area_m2 double precision NOT NULL,
        buildings integer NOT NULL,
        building_footprint_m2 double precision NOT NULL,
        built_up_ratio double precision,
        building_density_per_ha double precision,
        green_public_area_m2 double precision NOT NULL,
        green_public_share double precision,
        land_use_mix double precision,
        land_use_area_by_group_m2 jsonb NOT NULL DEFAULT '{}',""",
        "Planning indicators per commune: built-up ratio, density, green space, land-use mix",
    ),
    (
        "ops.commune_summary",
        "MultiPolygon",
        """commune_name text,
        city text,
        lamps integer NOT NULL DEFAULT 0,
        lamps_on integer NOT NULL DEFAULT 0,
        lamps_off integer NOT NULL DEFAULT 0,
        lamps_fault integer NOT NULL DEFAULT 0,
        lamps_maintenance integer NOT NULL DEFAULT 0,
        lamps_by_status jsonb NOT NULL DEFAULT '{}',
        wifi_hotspots integer NOT NULL DEFAULT 0,
        wifi_active integer NOT NULL DEFAULT 0,
        wifi_offline integer NOT NULL DEFAULT 0,
        cameras integer NOT NULL DEFAULT 0,
        cameras_online integer NOT NULL DEFAULT 0,
        cameras_offline integer NOT NULL DEFAULT 0,
        cameras_by_kind jsonb NOT NULL DEFAULT '{}',
        sensors integer NOT NULL DEFAULT 0,
        sensors_online integer NOT NULL DEFAULT 0,
        water_quality jsonb NOT NULL DEFAULT '{}',
        air_quality jsonb NOT NULL DEFAULT '{}',
        latest_reading_at timestamptz,
        incidents_open integer NOT NULL DEFAULT 0,
        incidents_open_lt_1d integer NOT NULL DEFAULT 0,
        incidents_open_1_7d integer NOT NULL DEFAULT 0,
        incidents_open_gt_7d integer NOT NULL DEFAULT 0,
        incidents_by_category jsonb NOT NULL DEFAULT '{}',""",
        "Per-commune summary for the operations centre: devices by status, latest sensor "
        "readings, open incidents by category and age",
    ),
]


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS planning")
    for qualified, geometry_type, columns, comment in DERIVED:
        name = qualified.split(".")[1]
        op.execute(
            f"""
            CREATE TABLE {qualified} (
                {_COMMON}
                {columns}
                {_TAIL}
                geom geometry({geometry_type}, 4326) NOT NULL
            );
            CREATE INDEX {name}_geom ON {qualified} USING gist (geom);
            CREATE INDEX {name}_commune ON {qualified} (commune_code);
            COMMENT ON TABLE {qualified} IS '{comment}; derived, see docs/planning.md';
            """
        )
    op.execute(
        """
        CREATE TABLE planning.refreshes (
            refresh_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            layer text NOT NULL,
            run_id bigint,
            trigger text NOT NULL,
            refreshed_at timestamptz NOT NULL DEFAULT now(),
            rows integer NOT NULL,
            duration_ms double precision NOT NULL
        );
        CREATE INDEX refreshes_layer ON planning.refreshes (layer, refreshed_at DESC);
        COMMENT ON TABLE planning.refreshes IS
            'One row per rebuild of a derived planning or operations table';

        -- Environmental sensor readings, long format: one row per sensor, parameter and time.
        CREATE TABLE utility.env_readings (
            sensor_code text NOT NULL,
            parameter text NOT NULL,
            observed_at timestamptz NOT NULL,
            value double precision NOT NULL,
            unit text,
            run_id bigint NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (sensor_code, parameter, observed_at)
        );
        CREATE INDEX env_readings_time ON utility.env_readings (observed_at);
        COMMENT ON TABLE utility.env_readings IS
            'Water- and air-quality readings of utility.env_sensors (append-only time series)';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS utility.env_readings")
    op.execute("DROP TABLE IF EXISTS ops.commune_summary")
    op.execute("DROP SCHEMA IF EXISTS planning CASCADE")
