-- Columns filled by a sequence no other column uses: identity columns, and defaults
-- nextval('…') whose sequence no other default names. Parameter: table (qualified name).
SELECT a.attname, pg_get_serial_sequence(%(table)s, a.attname)
FROM pg_attribute a
WHERE a.attrelid = %(table)s::regclass AND a.attidentity <> '' AND NOT a.attisdropped
UNION ALL
SELECT a.attname, d.refobjid::regclass::text
FROM pg_attribute a
JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
WHERE a.attrelid = %(table)s::regclass AND NOT a.attisdropped
  AND pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%%'
  AND (SELECT count(*) FROM pg_depend o
       WHERE o.classid = 'pg_attrdef'::regclass AND o.refobjid = d.refobjid) = 1
