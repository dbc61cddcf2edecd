-- Active flood warnings with their gauge's thresholds: the river-flood hazard's areas.
SELECT w.gauge_code, w.gauge_name, w.commune_code, w.level, w.water_level_m,
       w.water_level_m - g.alarm_level_3, w.observed_at, w.river,
       ST_AsBinary(coalesce(w.geom, (SELECT ST_Multi(c.geom) FROM admin.communes_current c
                                      WHERE c.commune_code = w.commune_code LIMIT 1)))
FROM hazard.warnings_current w
JOIN hazard.gauges_current g ON g.gauge_code = w.gauge_code
ORDER BY w.gauge_code
