-- Rainfall per commune: the wettest gauge inside the commune, else the nearest gauge within
-- %(max_gauge_distance_m)s m of the commune's point on surface (docs/warnings.md: a warning
-- must not average away the wettest gauge, and interpolating between gauges 10–20 km apart
-- across Quảng Ninh's hills invents rain that no gauge measured).
DELETE FROM hazard.commune_rainfall;
INSERT INTO hazard.commune_rainfall (commune_code, commune_name, gauge_code, gauge_distance_m,
    method, reference_at, r1_mm, r3_mm, r6_mm, r12_mm, r24_mm, r48_mm, r72_mm, geom)
SELECT c.commune_code, c.commune_name, g.gauge_code, g.distance_m, g.method, g.reference_at,
       g.r1_mm, g.r3_mm, g.r6_mm, g.r12_mm, g.r24_mm, g.r48_mm, g.r72_mm,
       ST_Multi(c.geom)
FROM admin.communes_current c
CROSS JOIN LATERAL (
    SELECT * FROM (
        (SELECT i.*, 0.0::float8 AS distance_m, 'wettest gauge in the commune' AS method, 0 AS rank
         FROM sdi_rain_gauges i WHERE ST_Intersects(i.geom, c.geom)
         ORDER BY i.r24_mm DESC, i.r72_mm DESC, i.gauge_code LIMIT 1)
        UNION ALL
        (SELECT n.*, ST_Distance(n.geom::geography, ST_PointOnSurface(c.geom)::geography),
                'nearest gauge', 1
         FROM sdi_rain_gauges n
         ORDER BY n.geom <-> ST_PointOnSurface(c.geom) LIMIT 1)
    ) candidates
    WHERE rank = 0 OR distance_m <= %(max_gauge_distance_m)s
    ORDER BY rank LIMIT 1
) g
