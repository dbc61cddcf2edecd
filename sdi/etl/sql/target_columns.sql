-- A target table's columns in order: name, SQL type, geometry type (geometry columns only),
-- whether the column is part of the primary key. Parameter: the table's qualified name.
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       CASE WHEN t.typname = 'geometry' THEN postgis_typmod_type(a.atttypmod) END,
       a.attnum = ANY (coalesce(i.indkey::int2[], '{}'))
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
