"""The exposure of the disaster risk levels' areas, kept between recomputes (issue 15).

``hazard.area_exposure``: the exposure figures of an area (a commune, a flood warning's zones)
keyed by the md5 of its polygon, with the ``stamp`` of the exposed layers they were counted on
(buildings, parcels, lamps, pipes, cameras, communes: their latest run and current rows, and
the exposure model's parameters; ``sdi/hazard/sql/exposure_stamp.sql``). A risk recompute
reuses the figures of an unchanged polygon while the stamp holds — a typhoon bulletin or an
hourly rainfall delivery changes no exposed layer, so the whole province's communes are not
counted again — and drops them when it changes. ``hazard.area_residents``: the residential
buildings of such an area (surge and landslide zones: their evacuation list), by building id,
kept the same way. Internal, derived: no history of their own.

Revision ID: 0012c
Revises: 0012b
"""

from alembic import op

revision = "0012c"
down_revision = "0012b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE hazard.area_exposure (
            area_md5 text PRIMARY KEY,
            stamp text NOT NULL,
            figures jsonb NOT NULL,
            computed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE hazard.area_residents (
            area_md5 text NOT NULL REFERENCES hazard.area_exposure ON DELETE CASCADE,
            building_id bigint NOT NULL,
            residents_estimate integer NOT NULL,
            PRIMARY KEY (area_md5, building_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS hazard.area_residents")
    op.execute("DROP TABLE IF EXISTS hazard.area_exposure")
