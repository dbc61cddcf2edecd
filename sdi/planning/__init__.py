"""Derived planning layers and operations-centre summaries (``docs/planning.md``).

- ``refresh(conn, run_id=…, trigger=…, layers=…)`` rebuilds derived tables in the caller's
  transaction (the ETL's after-load hooks, registered in ``sdi/planning/hooks.py``, and
  ``sdi planning refresh`` call it);
- ``refresh_operations(conn)`` rebuilds only ``ops.commune_summary`` — for writers of
  operations data outside the ETL, such as the incidents API after each change;
- ``sdi.planning.model`` holds the rules; ``etl/codes/zoning_compatibility.yml`` the zoning
  compatibility table.
"""

from __future__ import annotations

from sdi.planning.refresh import RefreshResult, refresh, refresh_operations

__all__ = ["RefreshResult", "refresh", "refresh_operations"]
