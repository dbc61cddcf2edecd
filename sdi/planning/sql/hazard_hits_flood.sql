SELECT f.id, 'flood' AS hazard, z.return_period_years AS return_period, z.depth_class,
       z.zone_code, NULL::text AS class, NULL::double precision AS rank,
       NULL::integer AS class_order
FROM hazard.flood_zones_current z
CROSS JOIN LATERAL (
    SELECT f.id FROM {source} f WHERE ST_Intersects(f.geom, z.geom) OFFSET 0
) f  -- driven from the zones, as in hazard_hits_zone.sql
