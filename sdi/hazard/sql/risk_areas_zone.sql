-- Many areas at once (the disaster risk levels' areas), in the exposure code's area table:
-- keyed by the risk level's natural key, in storage CRS.
CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT a.key AS gauge_code, '{}'::text[] AS zone_codes, NULL::int AS return_period_years,
       '[]'::jsonb AS zones,
       (SELECT coalesce(jsonb_agg(c.commune_code ORDER BY c.commune_code), '[]')
        FROM admin.communes_current c
        WHERE ST_Intersects(c.geom, a.geom) AND NOT ST_Touches(c.geom, a.geom)) AS communes,
       a.geom
FROM (
    SELECT u.k AS key, ST_Multi(ST_GeomFromWKB(u.w, 4326))::geometry(MultiPolygon, 4326) AS geom
    FROM unnest(%(keys)s::text[], %(wkbs)s::bytea[]) AS u(k, w)
) a;
CREATE INDEX ON sdi_warning_zone USING gist (geom)
