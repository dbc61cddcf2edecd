-- The change feed's page (sdi.api.changes): the features whose version at until differs
-- from their version at since, in id order after the given id, each as a GeoJSON
-- feature of its version at until (for a removal, its last version).
WITH touched AS (
    SELECT DISTINCT id FROM {table}
    WHERE (valid_from > %(since)s AND valid_from <= %(until)s)
       OR (valid_to > %(since)s AND valid_to <= %(until)s)
), states AS (
    SELECT x.id,
           (SELECT t.version_id FROM {table} t WHERE t.id = x.id
              AND t.valid_from <= %(since)s
              AND (t.valid_to IS NULL OR t.valid_to > %(since)s)
            ORDER BY t.valid_from DESC LIMIT 1) AS before,
           (SELECT t.version_id FROM {table} t WHERE t.id = x.id
              AND t.valid_from <= %(until)s
              AND (t.valid_to IS NULL OR t.valid_to > %(until)s)
            ORDER BY t.valid_from DESC LIMIT 1) AS after
    FROM touched x WHERE x.id > %(after)s
)
SELECT s.id, {feature}::text
FROM states s
JOIN {table} v ON v.version_id = coalesce(s.after, s.before)
WHERE s.before IS DISTINCT FROM s.after
ORDER BY s.id
LIMIT %(limit)s
