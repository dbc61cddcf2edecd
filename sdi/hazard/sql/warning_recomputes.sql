-- What one recompute did (RecomputeResult), for the operations dashboards.
INSERT INTO hazard.warning_recomputes (run_id, trigger, duration_ms, gauges, active,
    raised, escalated, de_escalated, cleared, changed, unchanged)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
