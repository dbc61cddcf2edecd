SELECT f.id, {name}, NULL::integer, NULL::text, NULL::text, z.{column}::text,
       {rank}::double precision,
       array_position({classes}::text[], z.{column}::text)
FROM {table} z JOIN {source} f ON ST_Intersects(f.geom, z.geom)
