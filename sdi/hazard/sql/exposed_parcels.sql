-- The parcels sharing a point with the zone (found against its pieces, sdi_zone_parts), and
-- their area inside it, in the province CRS. A single-part parcel that meets the zone but not
-- its boundary lies inside it: its whole area counts (``area_m2``, derived from its geometry in
-- the province CRS by the load, to 0.01 m²; computed when missing). The parcels meeting the
-- boundary are found from the boundary's side (sdi_zone_edges: a few probes instead of one per
-- parcel); theirs is the sum of their intersections with the pieces, which partition the zone.
-- The pairs are found first without their geometries. {parcels}: land.parcels_current, of a
-- national warehouse only the provinces the zones can meet (warnings._exposed_layers).
CREATE TEMP TABLE sdi_edge_parcels ON COMMIT DROP AS
SELECT DISTINCT e.gauge_code, p.id
FROM sdi_zone_edges e
JOIN {parcels} p ON ST_Intersects(p.geom, e.geom);
ANALYZE sdi_edge_parcels;
CREATE TEMP TABLE sdi_exposed_parcels ON COMMIT DROP AS
SELECT h.gauge_code, p.id, p.natural_key, p.land_use_codes, p.commune_code, p.geom,
       CASE WHEN ST_NumGeometries(p.geom) = 1
                 AND NOT EXISTS (SELECT 1 FROM sdi_edge_parcels o
                                 WHERE o.gauge_code = h.gauge_code AND o.id = h.id)
            THEN coalesce(p.area_m2, ST_Area(ST_Transform(p.geom, %(srid)s::int)))
            ELSE (SELECT sum(ST_Area(ST_Intersection(ST_Transform(p.geom, %(srid)s::int),
                                                     z.geom_local)))
                  FROM sdi_zone_parts z
                  WHERE z.gauge_code = h.gauge_code AND ST_Intersects(z.geom, p.geom))
       END AS area_in_zone_m2
FROM (
    SELECT DISTINCT z.gauge_code, p.id, p.province_code
    FROM sdi_zone_parts z
    JOIN {parcels} p ON ST_Intersects(p.geom, z.geom)
) h
-- fetched back by id in the parcel's own partition (a lateral probe: one partition's id index,
-- not every included partition's rows hashed)
CROSS JOIN LATERAL (
    SELECT * FROM {parcels} x WHERE x.id = h.id AND x.province_code = h.province_code OFFSET 0
) p
