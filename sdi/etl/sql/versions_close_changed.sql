-- Close the current versions whose staged row differs and add their new versions (same
-- feature id when the table keeps one).
WITH closed AS (
    UPDATE {table} t SET valid_to = now()
    FROM {stage} s
    WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL {scope}
      AND t.row_hash <> {hash}{differs}
    RETURNING {returning}
)
INSERT INTO {table} ({id_column}{insert_columns})
SELECT {id_value}{values} FROM {stage} s JOIN closed c USING (natural_key)
