incidents AS (
    SELECT NULL::text AS commune_code, 0 AS open, 0 AS lt_1d, 0 AS d1_7, 0 AS gt_7d,
           '{}'::jsonb AS by_category WHERE false
)
