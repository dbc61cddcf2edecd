-- The zone of a parcel is the zone containing its interior point (ST_PointOnSurface: always
-- inside the parcel, unlike the centroid). Driven from the zones, each with its permitted codes:
-- a zone probes the parcels' GiST index with its box, and the cheap array test (codes not all
-- permitted) runs before the point-in-zone geometry, so only possible conflicts pay for it.
-- Where zones overlap, a parcel conflicting with several is listed once (lowest zone id); the
-- de-duplication sorts ids only, and the parcels' columns are fetched afterwards.
-- The parcels: land.parcels_current, or those of the communes a load touched (refresh.py);
-- then only the zones that meet the box of those parcels probe them ({near_parcels}), not
-- every zone of a nation.
WITH rules (planned_use, permitted) AS (
    SELECT u, string_to_array(c, ',') FROM unnest(%(uses)s::text[], %(codes)s::text[]) AS t (u, c)
),
zones AS MATERIALIZED (
    SELECT z.id, z.geom, r.permitted
    FROM land.zoning_current z JOIN rules r ON r.planned_use = z.planned_land_use
    WHERE {near_parcels}
),
hits AS (
    SELECT DISTINCT ON (p.id) p.id, zn.id AS zone_id
    FROM zones zn
    -- a lateral probe per zone (OFFSET 0 keeps it one), also when only the parcels of some
    -- communes are read (a scoped refresh): never those parcels first, each tested against
    -- every zone
    CROSS JOIN LATERAL (
        SELECT p.id FROM {parcels} p
        WHERE p.geom && zn.geom
          AND NOT (p.land_use_codes <@ zn.permitted)
          AND ST_Intersects(zn.geom, ST_PointOnSurface(p.geom))
        OFFSET 0
    ) p
    ORDER BY p.id, zn.id
)
INSERT INTO planning.land_use_conflicts (
    id, natural_key, commune_code, admin_vintage, sheet_no, parcel_no, land_use_codes,
    conflicting_codes, zone_code, zone_name, planned_land_use, plan_id, area_m2, run_id, geom)
SELECT p.id, p.natural_key, p.commune_code, p.admin_vintage, p.sheet_no, p.parcel_no,
       p.land_use_codes,
       ARRAY(SELECT DISTINCT code FROM unnest(p.land_use_codes) AS code
             WHERE code <> ALL (r.permitted) ORDER BY code),
       z.zone_code, z.zone_name, z.planned_land_use, z.plan_id,
       p.area_m2, %(run_id)s::bigint, p.geom
FROM hits h
JOIN land.zoning_current z ON z.id = h.zone_id
JOIN rules r ON r.planned_use = z.planned_land_use
JOIN {parcels} p ON p.id = h.id
