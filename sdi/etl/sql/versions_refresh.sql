-- Copy bookkeeping columns (source hash, row hash) onto current versions whose content did
-- not change: no new version.
UPDATE {table} t SET {assignments} FROM {stage} s
WHERE t.natural_key = s.natural_key AND t.valid_to IS NULL {scope}
  AND ({changed})
