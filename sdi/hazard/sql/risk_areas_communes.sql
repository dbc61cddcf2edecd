-- The communes sharing some of each area's interior (a neighbour touching its edge is not
-- concerned). Both sides are cut into pieces (a commune's boundary has up to 10,000 vertices,
-- and ST_Touches cannot use a prepared geometry): the interiors of an area and a commune meet
-- exactly when the interiors of one piece of each do.
CREATE TEMP TABLE sdi_commune_parts ON COMMIT DROP AS
SELECT c.commune_code, p.geom
FROM admin.communes_current c
CROSS JOIN LATERAL ST_Subdivide(c.geom, 256) AS p(geom)
WHERE EXISTS (SELECT 1 FROM sdi_warning_zone z WHERE z.communes IS NULL AND z.geom && c.geom);
CREATE INDEX ON sdi_commune_parts USING gist (geom);
ANALYZE sdi_commune_parts;
UPDATE sdi_warning_zone z SET communes = coalesce((
    SELECT jsonb_agg(DISTINCT c.commune_code ORDER BY c.commune_code)
    FROM sdi_zone_parts p
    JOIN sdi_commune_parts c
      ON ST_Intersects(c.geom, p.geom) AND NOT ST_Touches(c.geom, p.geom)
    WHERE p.gauge_code = z.gauge_code
), '[]')
WHERE z.communes IS NULL
