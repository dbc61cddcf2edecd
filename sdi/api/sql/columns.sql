-- The columns of a table or view and their types as format_type writes them
-- (e.g. "integer", "numeric(10,2)", "text[]", "timestamp with time zone").
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%(table)s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
