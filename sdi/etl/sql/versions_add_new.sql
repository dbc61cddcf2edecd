-- Add the staged features that have no current version.
INSERT INTO {table} ({insert_columns})
SELECT {values} FROM {stage} s
WHERE NOT EXISTS (
    SELECT 1 FROM {table} t
    WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL {scope}
)
