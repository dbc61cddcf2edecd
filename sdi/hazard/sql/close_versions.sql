UPDATE hazard.warnings w SET valid_to = now()
WHERE w.valid_to IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM sdi_warning_next n
      WHERE n.gauge_code = w.natural_key AND n.row_hash = w.row_hash
  )
