-- Each permit probes the buildings' GiST index with its box (a lateral probe, OFFSET 0 keeps
-- it one): with the buildings of some communes only, the planner could otherwise read them by
-- commune and test each against every permit.
CREATE TEMP TABLE sdi_permit_building_pairs ON COMMIT DROP AS
SELECT p.id AS permit_id, b.id AS building_id,
       (b.year_built IS NULL OR p.issued_on IS NULL
        OR p.issued_on <= make_date(b.year_built + %(tolerance_years)s, 12, 31)) AS date_fits
FROM {permits} p
CROSS JOIN LATERAL (
    SELECT b.id, b.year_built FROM {buildings} b
    WHERE b.geom && ST_Expand(p.geom, %(box_deg)s)
      AND (ST_Intersects(b.geom, p.geom)
           OR ST_DWithin(b.geom::geography, p.geom::geography, %(distance_m)s))
    OFFSET 0
) b
