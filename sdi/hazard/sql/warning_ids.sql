-- Each next warning's row hash (over the warning's columns: WARNING_COLUMNS) and id (the
-- current version's, or a new one). A template (sdi.sql.query).
ALTER TABLE sdi_warning_next ADD COLUMN row_hash uuid, ADD COLUMN id bigint;
UPDATE sdi_warning_next n SET row_hash = md5(ROW({hashed})::text)::uuid;
UPDATE sdi_warning_next n
SET id = coalesce(
    (SELECT w.id FROM hazard.warnings w WHERE w.natural_key = n.gauge_code AND w.valid_to IS NULL),
    nextval('hazard.warnings_id_seq')
)
