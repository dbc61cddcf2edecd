-- The current bulletin of every storm (its latest issue) as wind swaths: for each pair of
-- consecutive track points, the convex hull of their level-6 (and level-10) wind circles.
-- An area's storm level on a segment is the level of the points whose own level-6 circle
-- reaches it, or the higher of the two when only the hull between them does
-- (sdi_storm_level below). Circles are drawn on the geography (radii in km), kept in 4326.
CREATE TEMP TABLE sdi_typhoon_swaths ON COMMIT DROP AS
WITH current AS (
    SELECT DISTINCT ON (storm_code) storm_code, issued_at
    FROM hazard.typhoon_track ORDER BY storm_code, issued_at DESC
), points AS (
    SELECT t.*, lead(t.valid_at) OVER w AS next_at, lead(t.lon) OVER w AS next_lon,
           lead(t.lat) OVER w AS next_lat, lead(t.max_wind_level) OVER w AS next_level,
           lead(t.r6_km) OVER w AS next_r6, lead(t.r10_km) OVER w AS next_r10,
           count(*) OVER (PARTITION BY t.storm_code) AS n
    FROM hazard.typhoon_track t JOIN current USING (storm_code, issued_at)
    WINDOW w AS (PARTITION BY t.storm_code ORDER BY t.valid_at)
), pairs AS (
    -- a bulletin of one point is its own "pair"
    SELECT storm_code, storm_name, issued_at, valid_at,
           coalesce(next_at, valid_at) AS until_at,
           greatest(max_wind_level, coalesce(next_level, max_wind_level)) AS storm_level,
           ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS a,
           ST_SetSRID(ST_MakePoint(coalesce(next_lon, lon), coalesce(next_lat, lat)), 4326) AS b,
           r6_km, coalesce(next_r6, r6_km) AS r6_b,
           coalesce(r10_km, 0) AS r10_km, coalesce(next_r10, r10_km, 0) AS r10_b,
           max_wind_level, coalesce(next_level, max_wind_level) AS level_b
    FROM points WHERE next_at IS NOT NULL OR n = 1
)
SELECT storm_code, storm_name, issued_at, valid_at, until_at, storm_level,
       max_wind_level AS level_a, level_b, circle6_a, circle6_b,
       ST_ConvexHull(ST_Collect(circle6_a, circle6_b)) AS swath6,
       ST_ConvexHull(ST_Collect(
           CASE WHEN max_wind_level >= 10 AND r10_km > 0
                THEN ST_Buffer(a::geography, r10_km * 1000)::geometry END,
           CASE WHEN level_b >= 10 AND r10_b > 0
                THEN ST_Buffer(b::geography, r10_b * 1000)::geometry END)) AS swath10
FROM (
    SELECT pairs.*,
           CASE WHEN max_wind_level >= 6 AND r6_km > 0
                THEN ST_Buffer(a::geography, r6_km * 1000)::geometry END AS circle6_a,
           CASE WHEN level_b >= 6 AND r6_b > 0
                THEN ST_Buffer(b::geography, r6_b * 1000)::geometry END AS circle6_b
    FROM pairs
) segments
WHERE greatest(max_wind_level, level_b) >= 6;
DELETE FROM sdi_typhoon_swaths WHERE swath6 IS NULL;
CREATE INDEX ON sdi_typhoon_swaths USING gist (swath6)
