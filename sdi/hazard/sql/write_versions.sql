-- A new version of every warning whose current version was closed, or that is new (columns:
-- WARNING_COLUMNS). A template (sdi.sql.query).
INSERT INTO hazard.warnings (id, natural_key, {columns}, run_id, valid_from, row_hash)
SELECT n.id, n.gauge_code, {n_columns}, %(run_id)s, now(), n.row_hash
FROM sdi_warning_next n
WHERE NOT EXISTS (
    SELECT 1 FROM hazard.warnings w WHERE w.natural_key = n.gauge_code AND w.valid_to IS NULL
)
ORDER BY n.gauge_code
