-- Retire the current features the delivery does not have; returns how many, and the
-- communes they were in (for the derived data's refresh: NULL where there are none).
WITH retired AS (
    UPDATE {table} t SET valid_to = now()
    WHERE t.valid_to IS NULL {scope} {retire_only}
      AND NOT EXISTS (SELECT 1 FROM {delivered} s WHERE s.natural_key = t.natural_key)
    RETURNING {commune} AS commune_code
)
SELECT count(*), array_agg(DISTINCT commune_code) FILTER (WHERE commune_code IS NOT NULL)
FROM retired
