-- `sdi hazard warnings`: the active warnings, highest level first.
SELECT gauge_code, gauge_name, level_label, water_level_m,
       to_char(observed_at, 'YYYY-MM-DD HH24:MI TZ'),
       to_char(level_since, 'YYYY-MM-DD HH24:MI TZ'),
       array_to_string(zone_codes, ' '), buildings, residents_estimate, parcels,
       critical_facilities, street_lamps, round(water_pipes_m), cameras
FROM hazard.warnings_current ORDER BY level DESC, gauge_code
