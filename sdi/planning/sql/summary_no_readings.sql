readings AS (
    SELECT NULL::text AS commune_code, NULL::text AS admin_vintage, '{}'::jsonb AS water,
           '{}'::jsonb AS air, NULL::timestamptz AS latest_at WHERE false
)
