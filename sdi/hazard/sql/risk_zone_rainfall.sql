-- Landslide zones with the rainfall at the zone: the wettest gauge inside it, else the nearest
-- gauge within %(max_gauge_distance_m)s m of its point on surface (as for communes).
SELECT z.zone_code, z.susceptibility, z.commune_code, g.gauge_code, g.reference_at,
       g.r24_mm, g.r72_mm, round(g.distance_m::numeric)::float8, ST_AsBinary(ST_Multi(z.geom))
FROM hazard.landslide_zones_current z
CROSS JOIN LATERAL (
    SELECT * FROM (
        (SELECT i.*, 0.0::float8 AS distance_m, 0 AS rank
         FROM sdi_rain_gauges i WHERE ST_Intersects(i.geom, z.geom)
         ORDER BY i.r24_mm DESC, i.gauge_code LIMIT 1)
        UNION ALL
        (SELECT n.*, ST_Distance(n.geom::geography, ST_PointOnSurface(z.geom)::geography), 1
         FROM sdi_rain_gauges n ORDER BY n.geom <-> ST_PointOnSurface(z.geom) LIMIT 1)
    ) candidates
    WHERE rank = 0 OR distance_m <= %(max_gauge_distance_m)s
    ORDER BY rank LIMIT 1
) g
WHERE g.r24_mm >= %(min_rain_mm)s
ORDER BY z.zone_code
