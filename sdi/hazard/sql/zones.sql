-- The gauge's zones whose return period is at most the level's (or, when all its zones are
-- rarer, its most frequent ones), unioned; kept in storage CRS for the indexed predicates and
-- in the province CRS for lengths and areas.
CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT n.gauge_code,
       array_agg(z.zone_code ORDER BY z.return_period_years, z.zone_code) AS zone_codes,
       max(z.return_period_years) AS return_period_years,
       jsonb_agg(jsonb_build_object(
           'zone_code', z.zone_code, 'name', z.name,
           'return_period_years', z.return_period_years, 'depth_class', z.depth_class,
           'commune_code', z.commune_code
       ) ORDER BY z.return_period_years, z.zone_code) AS zones,
       coalesce(jsonb_agg(DISTINCT z.commune_code) FILTER (WHERE z.commune_code IS NOT NULL),
                '[]') AS communes,
       ST_Multi(ST_CollectionExtract(ST_Union(z.geom), 3))::geometry(MultiPolygon, 4326)
           AS geom
FROM sdi_warning_new n
JOIN hazard.flood_zones_current z ON z.gauge_code = n.gauge_code
WHERE z.return_period_years <= greatest(
    (%(periods)s::int[])[n.level],
    (SELECT min(m.return_period_years) FROM hazard.flood_zones_current m
     WHERE m.gauge_code = n.gauge_code)
)
GROUP BY n.gauge_code
