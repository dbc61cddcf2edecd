ALTER TABLE sdi_warning_zone ADD COLUMN geom_local geometry;
UPDATE sdi_warning_zone SET geom_local = ST_Transform(geom, %(srid)s::int);
ANALYZE sdi_warning_zone;
-- The areas cut into pieces of at most 256 vertices (a commune's boundary has up to 10,000):
-- every exact predicate against a piece is cheap and the index finds few pieces per feature.
-- The pieces partition their area, so "intersects the area" is "intersects a piece",
-- "covered by a piece" implies "covered by the area", and an area inside the zone is the sum
-- of the areas inside its pieces (exposed_parcels.sql, exposure_ctes.sql).
CREATE TEMP TABLE sdi_zone_parts ON COMMIT DROP AS
SELECT z.gauge_code, p.geom, ST_Transform(p.geom, %(srid)s::int) AS geom_local
FROM sdi_warning_zone z
CROSS JOIN LATERAL ST_Subdivide(z.geom, 256) AS p(geom);
CREATE INDEX ON sdi_zone_parts USING gist (geom);
ANALYZE sdi_zone_parts;
-- Their boundaries, cut short: a single-part feature that meets the area but not its boundary
-- lies inside it (exposed_parcels.sql), so most features need no exact covering test.
CREATE TEMP TABLE sdi_zone_edges ON COMMIT DROP AS
SELECT z.gauge_code, e.geom
FROM sdi_warning_zone z
CROSS JOIN LATERAL ST_Subdivide(ST_Boundary(z.geom), 64) AS e(geom);
CREATE INDEX ON sdi_zone_edges USING gist (geom);
ANALYZE sdi_zone_edges
