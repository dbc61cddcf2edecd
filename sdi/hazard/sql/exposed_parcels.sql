CREATE TEMP TABLE sdi_exposed_parcels ON COMMIT DROP AS
SELECT z.gauge_code, p.id, p.natural_key, p.land_use_codes, p.commune_code, p.geom,
       CASE WHEN ST_CoveredBy(p.geom, z.geom)
            THEN ST_Area(ST_Transform(p.geom, %(srid)s::int))
            ELSE ST_Area(ST_Intersection(ST_Transform(p.geom, %(srid)s::int), z.geom_local))
       END AS area_in_zone_m2
FROM sdi_warning_zone z
JOIN land.parcels_current p ON ST_Intersects(p.geom, z.geom)
