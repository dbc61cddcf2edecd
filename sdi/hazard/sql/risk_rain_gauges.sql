-- Accumulations per rain gauge over 1–72 hours before the reference time (the latest reading
-- of the network): readings are the rain of the hour ending at observed_at, so the last N
-- hours are the readings with observed_at in (reference - N h, reference].
CREATE TEMP TABLE sdi_rain_gauges ON COMMIT DROP AS
WITH ref AS (SELECT max(observed_at) AS at FROM hazard.rain_readings)
SELECT g.gauge_code, g.name, g.geom, ref.at AS reference_at,
       max(r.observed_at) AS last_reading_at,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '1 hour'), 0) AS r1_mm,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '3 hours'), 0) AS r3_mm,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '6 hours'), 0) AS r6_mm,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '12 hours'), 0) AS r12_mm,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '24 hours'), 0) AS r24_mm,
       coalesce(sum(r.rain_mm) FILTER (WHERE r.observed_at > ref.at - interval '48 hours'), 0) AS r48_mm,
       coalesce(sum(r.rain_mm), 0) AS r72_mm
FROM hazard.rain_gauges_current g
CROSS JOIN ref
LEFT JOIN hazard.rain_readings r
    ON r.gauge_code = g.gauge_code
   AND r.observed_at > ref.at - interval '72 hours' AND r.observed_at <= ref.at
WHERE ref.at IS NOT NULL
GROUP BY g.gauge_code, g.name, g.geom, ref.at;
CREATE INDEX ON sdi_rain_gauges USING gist (geom);
ANALYZE sdi_rain_gauges
