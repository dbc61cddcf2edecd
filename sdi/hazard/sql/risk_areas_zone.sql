-- Many areas at once (the disaster risk levels' areas), in the exposure code's area table:
-- keyed by the risk level's natural key, in storage CRS. Their communes are given (a
-- commune's own area: itself) or filled by risk_areas_communes.sql once the areas are cut into
-- pieces (zones_local.sql).
CREATE TEMP TABLE sdi_warning_zone ON COMMIT DROP AS
SELECT a.key AS gauge_code, '{}'::text[] AS zone_codes, NULL::int AS return_period_years,
       '[]'::jsonb AS zones, a.communes, a.geom
FROM (
    SELECT u.k AS key, ST_Multi(ST_GeomFromWKB(u.w, 4326))::geometry(MultiPolygon, 4326) AS geom,
           u.c::jsonb AS communes
    FROM unnest(%(keys)s::text[], %(wkbs)s::bytea[], %(communes)s::text[]) AS u(k, w, c)
) a;
CREATE INDEX ON sdi_warning_zone USING gist (geom)
