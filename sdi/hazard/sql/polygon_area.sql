CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT 'area'::text AS gauge_code, '{}'::text[] AS zone_codes, NULL::int AS return_period_years,
       '[]'::jsonb AS zones,
       (SELECT coalesce(jsonb_agg(c.commune_code ORDER BY c.commune_code), '[]')
        FROM admin.communes_current c WHERE ST_Intersects(c.geom, a.geom)) AS communes,
       a.geom
FROM (SELECT ST_Multi(ST_GeomFromWKB(%(wkb)s, 4326))::geometry(MultiPolygon, 4326) AS geom) a
