-- Open incidents (status <> 'resolved') by age since the report: < 1 day, 1–7 days, > 7 days.
-- Incidents are 2025-vintage (they are reported now), so they join the communes on the code.
incident_ages AS (
    SELECT commune_code, coalesce(category, 'other') AS category,
           CASE WHEN reported_at > now() - interval '1 day' THEN 'lt_1d'
                WHEN reported_at > now() - interval '7 days' THEN '1_7d'
                ELSE 'gt_7d' END AS age
    FROM ops.incidents WHERE status IS DISTINCT FROM 'resolved'
),
incident_categories AS (
    SELECT commune_code, category,
           jsonb_build_object('open', count(*),
                              'lt_1d', count(*) FILTER (WHERE age = 'lt_1d'),
                              '1_7d', count(*) FILTER (WHERE age = '1_7d'),
                              'gt_7d', count(*) FILTER (WHERE age = 'gt_7d')) AS counts
    FROM incident_ages GROUP BY 1, 2
),
incidents AS (
    SELECT a.commune_code, count(*) AS open,
           count(*) FILTER (WHERE age = 'lt_1d') AS lt_1d,
           count(*) FILTER (WHERE age = '1_7d') AS d1_7,
           count(*) FILTER (WHERE age = 'gt_7d') AS gt_7d,
           (SELECT jsonb_object_agg(category, counts ORDER BY category)
            FROM incident_categories c WHERE c.commune_code = a.commune_code) AS by_category
    FROM incident_ages a GROUP BY 1
)
