-- Per commune: the features of a table and an object counting them by the value of a column.
-- A template (sdi.sql.query): the table and the column are given as identifiers.
SELECT commune_code, admin_vintage, sum(n)::integer AS total,
       jsonb_object_agg(value, n ORDER BY value) AS by_value
FROM (SELECT commune_code, admin_vintage, coalesce({column}, 'unknown') AS value,
             count(*) AS n
      FROM {table} GROUP BY 1, 2, 3) s
GROUP BY 1, 2
