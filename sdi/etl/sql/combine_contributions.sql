-- Per feature, the current contributions of every source combined into one row typed like
-- the target: per column, the first source in the merge rule's order that has a value.
CREATE TEMP TABLE {combined} ON COMMIT DROP AS
WITH p AS (
    SELECT natural_key, jsonb_object_agg(source, attributes) AS by_source,
           {geometry} AS geom
    FROM etl.contributions
    WHERE target = {name} AND valid_to IS NULL
    GROUP BY natural_key
)
SELECT p.natural_key, {typed}, p.geom
FROM p, LATERAL jsonb_populate_record(NULL::{table}, {merged}) r
