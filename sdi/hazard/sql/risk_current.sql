-- `sdi hazard risk`: the active risk levels, highest first.
SELECT hazard, coalesce(area_name, area_code), level, article,
       to_char(level_since, 'YYYY-MM-DD HH24:MI TZ'), residents_estimate
FROM hazard.risk_levels_current ORDER BY level DESC, hazard, area_code
