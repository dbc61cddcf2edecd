-- The next state of every active warning. A template (sdi.sql.query): the exposure_*.sql
-- fragments are put in place, and a literal brace is written twice.
CREATE TEMP TABLE sdi_warning_next ON COMMIT DROP AS
{exposure_ctes}
SELECT n.gauge_code, n.gauge_name, n.river, n.commune_code, n.admin_vintage,
       n.level, (%(labels)s::text[])[n.level + 1] AS level_label,
       n.water_level_m, n.observed_at, n.threshold_m, n.next_threshold_m,
       n.alarm_since, n.level_since, n.peak_water_level_m, n.peak_at,
       z.return_period_years, coalesce(z.zone_codes, '{{}}') AS zone_codes,
{exposure_figures}
       jsonb_strip_nulls(jsonb_build_object(
{exposure_detail}
           'model', jsonb_build_object(
               'return_period_years', (%(periods)s::int[])[n.level],
               'persons_per_floor', %(persons_per_floor)s::numeric),
           'note', CASE WHEN z.gauge_code IS NULL
                        THEN 'no flood zone is linked to this gauge: exposure unknown' END
       )) AS detail,
       z.geom
FROM sdi_warning_new n
LEFT JOIN sdi_warning_zone z USING (gauge_code)
{exposure_joins}
