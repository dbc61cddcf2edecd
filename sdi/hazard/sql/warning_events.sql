-- `sdi hazard history`: raises, escalations, de-escalations and clears, newest first.
SELECT id, to_char(valid_from, 'YYYY-MM-DD HH24:MI:SS'), gauge_code, event,
       level_from || ' → ' || level_to, water_level_m,
       to_char(observed_at, 'YYYY-MM-DD HH24:MI TZ'), buildings,
       residents_estimate, run_id, reason
FROM hazard.warning_history
WHERE %(gauge)s::text IS NULL OR gauge_code = %(gauge)s
ORDER BY id DESC LIMIT %(limit)s
