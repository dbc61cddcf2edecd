-- The provinces of a province-partitioned table whose stored extent meets a lon/lat box.
-- Parameters: relation (the partitioned table), w, s, e, n.
SELECT province_code FROM etl.partition_extents
WHERE relation = %(relation)s AND extent && ST_MakeEnvelope(%(w)s, %(s)s, %(e)s, %(n)s, 4326)
ORDER BY province_code
