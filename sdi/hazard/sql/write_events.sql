INSERT INTO hazard.warning_history (
    natural_key, warning_id, gauge_code, gauge_name, commune_code, admin_vintage, event,
    level_from, level_to, level_label, water_level_m, observed_at, level_since, reason,
    zone_codes, buildings, residents_estimate, critical_facilities, geom, run_id, valid_from)
SELECT gauge_code, warning_id, gauge_code, gauge_name, commune_code, admin_vintage, event,
       level_from, level_to, level_label, water_level_m, observed_at, level_since, reason,
       zone_codes, buildings, residents_estimate, critical_facilities, geom, %(run_id)s, now()
FROM sdi_warning_events
ORDER BY gauge_code
