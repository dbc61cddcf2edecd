-- The latest reading of each parameter of each sensor: one backward scan of the readings'
-- primary key (sensor_code, parameter, observed_at) per sensor and parameter.
latest AS (
    SELECT s.commune_code, s.admin_vintage, s.kind, s.sensor_code, r.parameter, r.value,
           r.unit, r.observed_at
    FROM utility.env_sensors_current s
    CROSS JOIN LATERAL unnest(s.parameters) AS sp (parameter)
    CROSS JOIN LATERAL (
        SELECT r.parameter, r.value, r.unit, r.observed_at FROM utility.env_readings r
        WHERE r.sensor_code = s.sensor_code AND r.parameter = sp.parameter
        ORDER BY r.observed_at DESC LIMIT 1
    ) r
),
per_sensor AS (
    SELECT commune_code, admin_vintage, kind, sensor_code,
           jsonb_build_object(
               'observed_at', max(observed_at),
               'values', jsonb_object_agg(parameter, value ORDER BY parameter),
               'units', jsonb_object_agg(parameter, unit ORDER BY parameter)
                        FILTER (WHERE unit IS NOT NULL)) AS latest,
           max(observed_at) AS observed_at
    FROM latest GROUP BY 1, 2, 3, 4
),
readings AS (
    SELECT commune_code, admin_vintage,
           coalesce(jsonb_object_agg(sensor_code, latest ORDER BY sensor_code)
                    FILTER (WHERE kind = 'water_quality'), '{}') AS water,
           coalesce(jsonb_object_agg(sensor_code, latest ORDER BY sensor_code)
                    FILTER (WHERE kind = 'air_quality'), '{}') AS air,
           max(observed_at) AS latest_at
    FROM per_sensor GROUP BY 1, 2
)
