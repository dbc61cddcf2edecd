CREATE TEMP TABLE sdi_exposed_facilities ON COMMIT DROP AS
SELECT f.gauge_code, f.kind, 'parcel' AS site, f.ref, f.commune_code, named.name
FROM sdi_facility_parcels f
LEFT JOIN (
    SELECT gauge_code, kind, parcel_ref, min(name) AS name
    FROM sdi_facility_buildings WHERE parcel_ref IS NOT NULL
    GROUP BY 1, 2, 3
) named ON (named.gauge_code, named.kind, named.parcel_ref) = (f.gauge_code, f.kind, f.ref)
UNION ALL
SELECT gauge_code, kind, 'building', ref, commune_code, name
FROM sdi_facility_buildings
WHERE parcel_ref IS NULL
