CREATE TEMP TABLE sdi_facility_buildings ON COMMIT DROP AS

WITH kinds (kind, code, use_type) AS (
    SELECT * FROM jsonb_to_recordset(%(facilities)s::jsonb)
        AS f(kind text, code text, use_type text)
)
SELECT b.gauge_code, k.kind, b.building_code AS ref, b.name, b.commune_code,
       (SELECT min(f.ref) FROM sdi_facility_parcels f
        WHERE ST_Intersects(f.geom, ST_PointOnSurface(b.geom))
          AND f.gauge_code = b.gauge_code AND f.kind = k.kind) AS parcel_ref
FROM sdi_exposed_buildings b
JOIN kinds k ON b.use_type = k.use_type
