"""Natural-disaster warnings derived from the warehouse: flood warnings per river gauge.

- ``model``: alarm levels, which flood zones a level concerns, how exposure is counted;
- ``warnings``: ``recompute(conn, run_id)``, the SQL that keeps warnings and their history;
- ``hooks``: what the ETL runner calls after a successful load;
- ``cli``: ``sdi hazard …``.

See ``docs/warnings.md``.
"""
