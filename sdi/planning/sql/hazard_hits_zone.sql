SELECT f.id, {name}, NULL::integer, NULL::text, NULL::text, z.{column}::text,
       {rank}::double precision,
       array_position({classes}::text[], z.{column}::text)
-- Driven from the zones (a lateral probe of the features' GiST index per zone): a zone's
-- polygon stays the same over its features, so PostGIS prepares it once; features first
-- (which the planner likes over a partitioned table) re-read a large zone per feature.
FROM {table} z
CROSS JOIN LATERAL (
    SELECT f.id FROM {source} f WHERE ST_Intersects(f.geom, z.geom) OFFSET 0
) f
