SELECT c.commune_code, c.commune_name, c.gauge_code, c.reference_at, c.r12_mm, c.r24_mm, c.r48_mm,
       c.r72_mm, round(c.gauge_distance_m::numeric)::float8, c.method, ST_AsBinary(c.geom)
FROM hazard.commune_rainfall c
WHERE c.r24_mm >= %(min_rain_mm)s
ORDER BY c.commune_code
