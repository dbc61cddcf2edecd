-- The table partitioned by LIST on %(column)s (province_code) that a published relation is or
-- reads (a view over one such table, e.g. land.parcels_current), when the relation has that
-- column too; no row otherwise. Parameters: table (qualified name), column.
WITH rel AS (SELECT to_regclass(%(table)s) AS oid),
bases AS (
    SELECT rel.oid FROM rel
    UNION
    SELECT d.refobjid FROM rel
    JOIN pg_rewrite r ON r.ev_class = rel.oid
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
    WHERE d.refobjid <> rel.oid
)
SELECT b.oid::regclass::text
FROM bases b
JOIN pg_partitioned_table p ON p.partrelid = b.oid AND p.partstrat = 'l' AND p.partnatts = 1
JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
WHERE a.attname = %(column)s
  AND EXISTS (SELECT 1 FROM pg_attribute c, rel
              WHERE c.attrelid = rel.oid AND c.attname = %(column)s AND NOT c.attisdropped)
  AND (SELECT count(DISTINCT d.refobjid) FROM rel
       JOIN pg_rewrite r ON r.ev_class = rel.oid
       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
       JOIN pg_class k ON k.oid = d.refobjid AND k.relkind IN ('r', 'p', 'v', 'm', 'f')
       WHERE d.refobjid <> rel.oid) <= 1
