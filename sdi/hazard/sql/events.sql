CREATE TEMP TABLE sdi_warning_events ON COMMIT DROP AS
SELECT coalesce(n.id, o.id) AS warning_id,
       coalesce(n.gauge_code, o.natural_key) AS gauge_code,
       coalesce(n.gauge_name, o.gauge_name) AS gauge_name,
       coalesce(n.commune_code, o.commune_code) AS commune_code,
       coalesce(n.admin_vintage, o.admin_vintage) AS admin_vintage,
       CASE WHEN o.level IS NULL THEN 'raised'
            WHEN n.level IS NULL THEN 'cleared'
            WHEN n.level > o.level THEN 'escalated'
            ELSE 'de-escalated' END AS event,
       coalesce(o.level, 0) AS level_from,
       coalesce(n.level, 0) AS level_to,
       coalesce(n.level_label, %(none)s) AS level_label,
       coalesce(n.water_level_m, s.water_level_m) AS water_level_m,
       coalesce(n.observed_at, s.observed_at) AS observed_at,
       n.level_since,
       CASE WHEN n.gauge_code IS NOT NULL THEN
                format('water level %%s m at %%s reached alarm level %%s (%%s m)',
                       n.water_level_m, n.observed_at, n.level_label, n.threshold_m)
            WHEN s.gauge_code IS NOT NULL THEN
                format('water level %%s m at %%s is below alarm level I (%%s m)',
                       s.water_level_m, s.observed_at, s.thresholds[1])
            ELSE 'the gauge is no longer in the gauge register (or has no readings)'
       END AS reason,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.zone_codes ELSE o.zone_codes END AS zone_codes,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.buildings ELSE o.buildings END AS buildings,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.residents_estimate
            ELSE o.residents_estimate END AS residents_estimate,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.critical_facilities
            ELSE o.critical_facilities END AS critical_facilities,
       CASE WHEN n.gauge_code IS NOT NULL THEN n.geom ELSE o.geom END AS geom
FROM sdi_warning_next n
FULL JOIN (SELECT * FROM hazard.warnings WHERE valid_to IS NULL) o
    ON o.natural_key = n.gauge_code
LEFT JOIN sdi_gauge_state s ON s.gauge_code = coalesce(n.gauge_code, o.natural_key)
WHERE n.level IS DISTINCT FROM o.level
