-- A page of features and the number of matching rows, in one pass over them (the filter
-- is evaluated once; sdi.api.provider). Only the sort keys of the matching rows are kept,
-- not their geometries, up to a cap; the page's rows are then fetched by id (a quarter
-- faster for a bbox of about 800 parcels among a million). {fetch}: the join that fetches
-- them (on a province-partitioned table, from their own partition only).
WITH m AS MATERIALIZED (
    SELECT {key_columns} FROM {table} t WHERE {where} LIMIT %(cap)s
)
SELECT {feature}::text, {keys}, (SELECT count(*) FROM m)
FROM (
    SELECT * FROM m t ORDER BY {order} LIMIT %(limit)s OFFSET %(offset)s
) k
{fetch}
ORDER BY {order}
