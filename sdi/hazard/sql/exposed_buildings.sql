-- "In the zone" means sharing at least one point with it (ST_Intersects on the stored,
-- indexed column against the zone's pieces, sdi_zone_parts: the zone is the constant side);
-- the pairs are found first without their geometries. {buildings}: as the parcels in
-- exposed_parcels.sql.
CREATE TEMP TABLE sdi_exposed_buildings ON COMMIT DROP AS
SELECT h.gauge_code, b.id, b.building_code, b.name, b.use_type, b.floors, b.commune_code,
       b.geom
FROM (
    SELECT DISTINCT z.gauge_code, b.id, b.province_code
    FROM sdi_zone_parts z
    JOIN {buildings} b ON ST_Intersects(b.geom, z.geom)
) h
CROSS JOIN LATERAL (  -- in its own partition, as the parcels (exposed_parcels.sql)
    SELECT * FROM {buildings} x WHERE x.id = h.id AND x.province_code = h.province_code OFFSET 0
) b
