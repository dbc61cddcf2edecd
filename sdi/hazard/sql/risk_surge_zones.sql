-- Storm-surge zones activated by the storms: per commune, the zone of the strongest typhoon
-- scenario (lowest Beaufort level of its typhoon_level, e.g. 12 of '12-13') that the storm
-- reaches, among the zones its level-6 swath covers.
SELECT DISTINCT ON (z.commune_code, s.storm_code)
       z.zone_code, z.name, z.commune_code, z.typhoon_level, z.surge_height_m, s.storm_code,
       s.storm_level, s.issued_at, s.valid_at, ST_AsBinary(ST_Multi(z.geom))
FROM hazard.storm_surge_zones_current z
JOIN LATERAL (
    SELECT sw.storm_code, max(coalesce(greatest(CASE WHEN ST_Intersects(sw.circle6_a, z.geom) THEN sw.level_a END, CASE WHEN ST_Intersects(sw.circle6_b, z.geom) THEN sw.level_b END), sw.storm_level)) AS storm_level, max(sw.issued_at) AS issued_at,
           min(sw.valid_at) AS valid_at
    FROM sdi_typhoon_swaths sw WHERE ST_Intersects(sw.swath6, z.geom)
    GROUP BY sw.storm_code
) s ON substring(z.typhoon_level FROM '[0-9]+')::int <= s.storm_level
ORDER BY z.commune_code, s.storm_code, substring(z.typhoon_level FROM '[0-9]+')::int DESC,
         z.surge_height_m DESC, z.zone_code
