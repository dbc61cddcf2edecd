-- The exposure figures of every area in sdi_warning_zone, keyed: the same fragments as the
-- flood warnings (exposure_*.sql). A template (sdi.sql.query).
{exposure_ctes}
SELECT z.gauge_code AS area_key,
{exposure_figures}
       jsonb_strip_nulls(jsonb_build_object(
{exposure_detail}
           'model', jsonb_build_object(
               'persons_per_floor', %(persons_per_floor)s::numeric)
       )) AS detail
FROM sdi_warning_zone z
{exposure_joins}
