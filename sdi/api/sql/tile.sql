-- One Mapbox vector tile of a layer (sdi.api.tiles). Placeholders: the layer's
-- published values, columns, table, id and geometry columns, storage SRID, and the
-- MVT grid (extent, buffer); parameters: z, x, y, the layer name and the margin.
SELECT ST_AsMVT(mvt.*, %(layer)s, {extent}, '__mvt_geom', '__mvt_id')
FROM (
    SELECT {id}::bigint AS __mvt_id,
           ST_AsMVTGeom(ST_Transform({geom}, 3857),
                        ST_TileEnvelope(%(z)s::int, %(x)s::int, %(y)s::int),
                        {extent}, {buffer}, true) AS __mvt_geom{comma}{values}
    -- The features of the tile and its buffer, found with the GiST index: the search
    -- area is transformed to the storage CRS, not the column. OFFSET 0 plans this scan
    -- on its own, or the cost of ST_AsMVTGeom on every row can make PostgreSQL prefer
    -- a parallel sequential scan (GiST index scans are not parallel).
    FROM (
        SELECT {columns} FROM {table} t
        WHERE {geom} && ST_Transform(
            ST_TileEnvelope(%(z)s::int, %(x)s::int, %(y)s::int, margin => %(margin)s), {srid})
        OFFSET 0
    ) t
    -- no filter on __mvt_geom: ST_AsMVT skips the rows clipped away (NULL)
) mvt
