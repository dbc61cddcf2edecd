-- After a load of parcels or buildings: how many of the touched communes the communes layer
-- knows, and whether any of them meets an active area ({active}: a _current view with a
-- geometry). Parameters: the commune codes, twice.
SELECT (SELECT count(DISTINCT commune_code) FROM admin.communes_current
        WHERE commune_code = ANY(%s)),
       EXISTS (SELECT 1 FROM admin.communes_current c
               JOIN {active} a ON ST_Intersects(c.geom, a.geom)
               WHERE c.commune_code = ANY(%s))
