-- The exposure figures of every area in sdi_warning_zone (the "exposure" process). A template
-- (sdi.sql.query): the exposure_*.sql fragments are put in place.
{exposure_ctes}
SELECT z.zone_codes, z.return_period_years,
{exposure_figures}
       jsonb_strip_nulls(jsonb_build_object(
{exposure_detail}
           'model', jsonb_build_object(
               'persons_per_floor', %(persons_per_floor)s::numeric)
       )) AS detail,
       ST_AsGeoJSON(z.geom, 7)::json AS geometry,
       ST_AsBinary(z.geom) AS wkb
FROM sdi_warning_zone z
{exposure_joins}
