-- Communes in a storm's level-6 swath: the storm's highest maximum wind level among the
-- swath segments reaching the commune, whether level-10 winds reach it, and its setting
-- (coast: the commune has storm-surge zones; else land).
SELECT c.commune_code, c.commune_name, s.storm_code, max(s.storm_name), max(s.issued_at),
       max(coalesce(greatest(CASE WHEN ST_Intersects(s.circle6_a, c.geom) THEN s.level_a END, CASE WHEN ST_Intersects(s.circle6_b, c.geom) THEN s.level_b END), s.storm_level)), bool_or(coalesce(ST_Intersects(s.swath10, c.geom), false)),
       EXISTS (SELECT 1 FROM hazard.storm_surge_zones_current z
               WHERE z.commune_code = c.commune_code OR ST_Intersects(z.geom, c.geom)),
       min(s.valid_at), ST_AsBinary(ST_Multi(c.geom))
FROM admin.communes_current c
JOIN sdi_typhoon_swaths s ON ST_Intersects(s.swath6, c.geom)
GROUP BY c.commune_code, c.commune_name, s.storm_code, c.geom
ORDER BY c.commune_code, s.storm_code
