-- The latest reading of every current gauge and the level it reaches (highest threshold at or
-- below the water level). The readings' primary key (gauge_code, observed_at) serves every
-- lookup below as a short backward index scan.
CREATE TEMP TABLE sdi_gauge_state ON COMMIT DROP AS
SELECT DISTINCT ON (g.gauge_code)
    g.gauge_code, g.name AS gauge_name, g.river, g.commune_code, g.admin_vintage,
    ARRAY[g.alarm_level_1, g.alarm_level_2, g.alarm_level_3] AS thresholds,
    r.observed_at, r.water_level_m,
    CASE WHEN r.water_level_m >= g.alarm_level_3 THEN 3
         WHEN r.water_level_m >= g.alarm_level_2 THEN 2
         WHEN r.water_level_m >= g.alarm_level_1 THEN 1
         ELSE 0 END::smallint AS level
FROM hazard.gauges_current g
CROSS JOIN LATERAL (
    SELECT observed_at, water_level_m FROM hazard.gauge_readings r
    WHERE r.gauge_code = g.gauge_code
    ORDER BY r.observed_at DESC LIMIT 1
) r
ORDER BY g.gauge_code, g.valid_from DESC, g.id
