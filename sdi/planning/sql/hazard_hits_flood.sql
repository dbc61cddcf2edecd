SELECT f.id, 'flood' AS hazard, z.return_period_years AS return_period, z.depth_class,
       z.zone_code, NULL::text AS class, NULL::double precision AS rank,
       NULL::integer AS class_order
FROM hazard.flood_zones_current z JOIN {source} f ON ST_Intersects(f.geom, z.geom)
