-- A parcel with several codes ("ODT+TMD") has its area split evenly between them, so areas add
-- up to the parcelled area. Entropy: -Σ p·ln p / ln K over the K land-use groups (0: one group,
-- 1: all groups in equal shares). Parcels, buildings and communes: the current rows, or
-- those of the communes a load touched (refresh.py).
WITH groups (code, grp) AS (SELECT * FROM unnest(%(codes)s::text[], %(groups)s::text[])),
-- One pass over the parcels of known communes: area per commune and code. Each parcel adds
-- 1 / (its number of codes) per code, so the shares add up to the number of parcels.
code_areas AS (
    SELECT p.commune_code, p.admin_vintage, c.code,
           sum(coalesce(p.area_m2, ST_Area(ST_Transform(p.geom, %(srid)s)))
               / cardinality(p.land_use_codes)) AS area,
           sum(1.0 / cardinality(p.land_use_codes)) AS parcel_shares
    FROM {parcels} p
    JOIN {communes} cc USING (commune_code, admin_vintage)
    CROSS JOIN LATERAL unnest(p.land_use_codes) AS c (code)
    GROUP BY 1, 2, 3
),
by_group AS (
    SELECT commune_code, admin_vintage, coalesce(g.grp, %(other)s) AS grp, sum(area) AS area
    FROM code_areas LEFT JOIN groups g USING (code)
    GROUP BY 1, 2, 3
),
mix AS (
    SELECT commune_code, admin_vintage,
           jsonb_object_agg(grp, round(area::numeric, 1) ORDER BY grp) AS by_group,
           sum(area) AS parcel_area,
           -sum((area / total) * ln(area / total)) FILTER (WHERE area > 0) / ln(%(k)s) AS mix
    FROM (SELECT *, sum(area) OVER (PARTITION BY commune_code, admin_vintage) AS total
          FROM by_group) s
    WHERE total > 0
    GROUP BY 1, 2
),
green AS (
    SELECT commune_code, admin_vintage, sum(area) AS area
    FROM code_areas WHERE code = ANY (%(green)s::text[])
    GROUP BY 1, 2
),
parcels AS (
    SELECT commune_code, admin_vintage, round(sum(parcel_shares))::integer AS n
    FROM code_areas GROUP BY 1, 2
),
buildings AS (
    SELECT b.commune_code, b.admin_vintage, count(*) AS n,
           sum(coalesce(b.footprint_m2, ST_Area(ST_Transform(b.geom, %(srid)s)))) AS footprint
    FROM {buildings} b
    JOIN {communes} cc USING (commune_code, admin_vintage)
    GROUP BY 1, 2
)
INSERT INTO planning.commune_indicators (
    id, natural_key, commune_code, admin_vintage, commune_name, city, commune_area_m2,
    parcels, parcel_area_m2, buildings, building_footprint_m2, built_up_ratio,
    building_density_per_ha, green_public_area_m2, green_public_share, land_use_mix,
    land_use_area_by_group_m2, run_id, geom)
SELECT c.id, c.natural_key, c.commune_code, c.admin_vintage, c.commune_name,
       nullif(c.city, ''), c.area_m2,
       coalesce(p.n, 0), coalesce(m.parcel_area, 0),
       coalesce(b.n, 0), coalesce(b.footprint, 0),
       b.footprint / nullif(m.parcel_area, 0),
       coalesce(b.n, 0) / nullif(m.parcel_area / 10000.0, 0),
       coalesce(g.area, 0), coalesce(g.area, 0) / nullif(m.parcel_area, 0),
       m.mix, coalesce(m.by_group, '{{}}'),
       %(run_id)s::bigint, c.geom
FROM {communes} c
LEFT JOIN parcels p USING (commune_code, admin_vintage)
LEFT JOIN mix m USING (commune_code, admin_vintage)
LEFT JOIN green g USING (commune_code, admin_vintage)
LEFT JOIN buildings b USING (commune_code, admin_vintage)
