-- The parcels sharing a point with the zone (found against its pieces, sdi_zone_parts), and
-- their area inside it: the whole parcel when one piece of the zone covers it, else the sum
-- of its intersections with the pieces (which partition the zone), in the province CRS. The
-- pairs are found first without their geometries, so grouping them stays in memory.
CREATE TEMP TABLE sdi_exposed_parcels ON COMMIT DROP AS
SELECT h.gauge_code, p.id, p.natural_key, p.land_use_codes, p.commune_code, p.geom,
       CASE WHEN h.covered THEN ST_Area(ST_Transform(p.geom, %(srid)s::int))
            ELSE (SELECT sum(ST_Area(ST_Intersection(ST_Transform(p.geom, %(srid)s::int),
                                                     z.geom_local)))
                  FROM sdi_zone_parts z
                  WHERE z.gauge_code = h.gauge_code AND ST_Intersects(z.geom, p.geom))
       END AS area_in_zone_m2
FROM (
    SELECT gauge_code, id, bool_or(covered) AS covered
    FROM (
        SELECT z.gauge_code, p.id, ST_Covers(z.geom, p.geom) AS covered
        FROM sdi_zone_parts z
        JOIN land.parcels_current p ON ST_Intersects(p.geom, z.geom)
        OFFSET 0  -- evaluated before the grouping, which then sorts narrow rows
    ) pairs
    GROUP BY gauge_code, id
) h
JOIN land.parcels_current p ON p.id = h.id
