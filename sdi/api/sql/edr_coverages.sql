-- The series of the locations that match the query (sdi.api.edr): per location, its key,
-- coordinates, the number of readings, their instants (UTC, ISO 8601) and the ranges: a
-- JSON object of one array of values per parameter, in time order.
SELECT l.{key}, ST_X(l.geom), ST_Y(l.geom), s.n, s.times, s.ranges
FROM {locations} l
CROSS JOIN LATERAL (
    SELECT count(*) AS n,
           coalesce(json_agg(to_char(r.{time} AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                             ORDER BY r.{time}), '[]') AS times,
           json_build_object({ranges}) AS ranges
    FROM {readings} r WHERE {reading_filter}
) s
WHERE {where}
ORDER BY {order}
