CREATE TEMP TABLE sdi_warning_new ON COMMIT DROP AS
SELECT gauge_code, %(level)s::int AS level FROM hazard.gauges_current WHERE gauge_code = %(gauge)s
