-- A facility is a site: a parcel with the facility's land-use code, or a building of the
-- facility's type not standing (by its point on surface) on such an exposed parcel. Both sides
-- are small; the parcels get a GiST index so matching a building to its parcel is a lookup.
CREATE TEMP TABLE sdi_facility_parcels ON COMMIT DROP AS

WITH kinds (kind, code, use_type) AS (
    SELECT * FROM jsonb_to_recordset(%(facilities)s::jsonb)
        AS f(kind text, code text, use_type text)
)
SELECT p.gauge_code, k.kind, p.natural_key AS ref, p.commune_code, p.geom
FROM sdi_exposed_parcels p
JOIN kinds k ON p.land_use_codes @> ARRAY[k.code];
CREATE INDEX ON sdi_facility_parcels USING gist (geom);
ANALYZE sdi_facility_parcels
