-- "In the zone" means sharing at least one point with it (ST_Intersects on the stored,
-- indexed column against the zone's pieces, sdi_zone_parts: the zone is the constant side).
CREATE TEMP TABLE sdi_exposed_buildings ON COMMIT DROP AS
SELECT DISTINCT ON (z.gauge_code, b.id)
       z.gauge_code, b.id, b.building_code, b.name, b.use_type, b.floors, b.commune_code,
       b.geom
FROM sdi_zone_parts z
JOIN construction.buildings_current b ON ST_Intersects(b.geom, z.geom)
ORDER BY z.gauge_code, b.id
