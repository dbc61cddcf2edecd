-- The indexes of a table but its primary key, optionally only those of some access methods
-- (gist, btree, …): schema, name and definition of each. Parameters: the table's qualified
-- name, the methods (text[] or NULL for all) twice. Only the indexes this role may drop (it
-- owns them, or is a member of their owner); the ETL role asks etl.suspend_indexes (0012d).
-- The definition of a partitioned table's index reads "ON ONLY": made again so, it would be an
-- invalid index on the parent alone, without its partitions' (no GiST index on any province's
-- parcels).
SELECT n.nspname, c.relname, regexp_replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am a ON a.oid = c.relam
WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
  AND (%s::text[] IS NULL OR a.amname = ANY (%s::text[]))
  AND pg_has_role(c.relowner, 'USAGE')
