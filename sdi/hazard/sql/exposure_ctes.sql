-- The exposure figures of every area in sdi_warning_zone (keyed by gauge_code). Shared by the
-- warnings (warning_next.sql) and the "exposure" process (exposure_of_areas.sql), which
-- fills sdi_warning_zone with one area of its own: one definition of what is exposed.
WITH buildings AS (
    SELECT gauge_code, sum(n)::int AS buildings,
           jsonb_object_agg(use_type, n ORDER BY use_type) AS by_use,
           coalesce(sum(floors) FILTER (WHERE use_type = 'residential'), 0)::int
               AS residential_floors
    FROM (
        SELECT gauge_code, coalesce(use_type, 'unknown') AS use_type, count(*) AS n,
               sum(greatest(coalesce(floors, 1), 1)) AS floors
        FROM sdi_exposed_buildings GROUP BY 1, 2
    ) b
    GROUP BY gauge_code
), parcel_groups AS (
    SELECT gauge_code, grp, count(*) AS n, sum(area_in_zone_m2) AS area
    FROM (
        SELECT DISTINCT p.gauge_code, p.id, coalesce(g.grp, %(other)s) AS grp, p.area_in_zone_m2
        FROM sdi_exposed_parcels p
        CROSS JOIN LATERAL unnest(p.land_use_codes) AS c(code)
        LEFT JOIN jsonb_each_text(%(groups)s::jsonb) AS g(code, grp) ON g.code = c.code
    ) x
    GROUP BY 1, 2
), parcels AS (
    SELECT gauge_code, count(*)::int AS parcels FROM sdi_exposed_parcels GROUP BY 1
), parcels_by_group AS (
    SELECT gauge_code, jsonb_object_agg(grp, n ORDER BY grp) AS by_group,
           jsonb_object_agg(grp, round(area::numeric, 1) ORDER BY grp) AS area_by_group
    FROM parcel_groups GROUP BY 1
), facilities AS (
    SELECT gauge_code,
           count(*) FILTER (WHERE kind = 'school')::int AS schools,
           count(*) FILTER (WHERE kind = 'health')::int AS health_facilities,
           count(*) FILTER (WHERE kind = 'state_office')::int AS state_offices,
           count(*)::int AS critical_facilities,
           coalesce(jsonb_agg(jsonb_build_object('kind', kind, 'site', site, 'ref', ref,
                                                 'name', name, 'commune_code', commune_code)
                              ORDER BY kind, ref) FILTER (WHERE rn <= %(facility_limit)s),
                    '[]') AS listed
    FROM (
        SELECT *, row_number() OVER (PARTITION BY gauge_code ORDER BY kind, ref) AS rn
        FROM sdi_exposed_facilities
    ) f
    GROUP BY 1
), lamps AS (
    SELECT z.gauge_code, count(DISTINCT l.id)::int AS n
    FROM sdi_zone_parts z
    JOIN utility.street_lamps_current l ON ST_Intersects(l.geom, z.geom)
    GROUP BY 1
), cameras AS (
    SELECT z.gauge_code, count(DISTINCT c.id)::int AS n
    FROM sdi_zone_parts z
    JOIN utility.cameras_current c ON ST_Intersects(c.geom, z.geom)
    GROUP BY 1
), pipes AS (
    -- the pieces partition the zone: a pipe's length inside it is the sum over the pieces
    SELECT z.gauge_code, count(DISTINCT w.id)::int AS n,
           sum(ST_Length(ST_Intersection(ST_Transform(w.geom, %(srid)s::int), z.geom_local)))
               AS length_m
    FROM sdi_zone_parts z
    JOIN utility.water_pipes_current w ON ST_Intersects(w.geom, z.geom)
    GROUP BY 1
)
