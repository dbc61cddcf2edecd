-- Retire the current features the delivery does not have.
UPDATE {table} t SET valid_to = now()
WHERE t.valid_to IS NULL {scope} {retire_only}
  AND NOT EXISTS (SELECT 1 FROM {delivered} s WHERE s.natural_key = t.natural_key)
