UPDATE hazard.warning_history h SET valid_to = now()
FROM sdi_warning_events e
WHERE h.natural_key = e.gauge_code AND h.valid_to IS NULL
