-- Gauges at level I or more: since when (first reading after the last one below the
-- threshold) at alarm level I and at the current level, and the episode's peak (peak.sql).
-- alarm_since is the start of the episode: while the warning stays active it never moves
-- later (a late reading below alarm I does not restart an episode that was raised), only
-- earlier when late readings show the rise began sooner.
CREATE TEMP TABLE sdi_warning_new ON COMMIT DROP AS
SELECT s.*, s.thresholds[s.level] AS threshold_m, s.thresholds[s.level + 1] AS next_threshold_m,
       least((
           SELECT min(r.observed_at) FROM hazard.gauge_readings r
           WHERE r.gauge_code = s.gauge_code
             AND r.observed_at > coalesce((
                 SELECT max(b.observed_at) FROM hazard.gauge_readings b
                 WHERE b.gauge_code = s.gauge_code AND b.water_level_m < s.thresholds[1]
             ), '-infinity')
       ), (
           SELECT w.alarm_since FROM hazard.warnings w
           WHERE w.natural_key = s.gauge_code AND w.valid_to IS NULL
       )) AS alarm_since,
       (
           SELECT min(r.observed_at) FROM hazard.gauge_readings r
           WHERE r.gauge_code = s.gauge_code
             AND r.observed_at > coalesce((
                 SELECT max(b.observed_at) FROM hazard.gauge_readings b
                 WHERE b.gauge_code = s.gauge_code AND b.water_level_m < s.thresholds[s.level]
             ), '-infinity')
       ) AS level_since
FROM sdi_gauge_state s
WHERE s.level > 0
