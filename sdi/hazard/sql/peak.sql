ALTER TABLE sdi_warning_new ADD COLUMN peak_water_level_m double precision,
    ADD COLUMN peak_at timestamptz;
UPDATE sdi_warning_new s SET peak_water_level_m = p.water_level_m, peak_at = p.observed_at
FROM sdi_warning_new n CROSS JOIN LATERAL (
    SELECT r.water_level_m, r.observed_at FROM hazard.gauge_readings r
    WHERE r.gauge_code = n.gauge_code AND r.observed_at >= n.alarm_since
    ORDER BY r.water_level_m DESC, r.observed_at LIMIT 1
) p
WHERE s.gauge_code = n.gauge_code
