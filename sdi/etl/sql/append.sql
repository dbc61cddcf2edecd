-- A time series: new readings added, corrected values replacing the old ones, repeated
-- readings left alone; returns (added, updated).
WITH written AS (
    INSERT INTO {table} AS t ({insert})
    SELECT DISTINCT ON ({keys}) {select} FROM {stage} ORDER BY {keys}
    ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {changed}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
FROM written
