-- The operations-centre summary per commune. A template (sdi.sql.query): the counts are
-- count_by.sql, then summary_readings.sql (summary_no_readings.sql when the readings table is
-- missing) and summary_incidents.sql (or summary_no_incidents.sql); a literal brace is
-- written twice.
WITH lamps AS ({lamps}),
wifi AS ({wifi}),
cameras AS ({cameras}),
camera_kinds AS ({camera_kinds}),
sensors AS ({sensors}),
{readings},
{incidents}
INSERT INTO ops.commune_summary (
    id, natural_key, commune_code, admin_vintage, commune_name, city,
    lamps, lamps_on, lamps_off, lamps_fault, lamps_maintenance, lamps_by_status,
    wifi_hotspots, wifi_active, wifi_offline,
    cameras, cameras_online, cameras_offline, cameras_by_kind,
    sensors, sensors_online, water_quality, air_quality, latest_reading_at,
    incidents_open, incidents_open_lt_1d, incidents_open_1_7d, incidents_open_gt_7d,
    incidents_by_category, run_id, geom)
SELECT c.id, c.natural_key, c.commune_code, c.admin_vintage, c.commune_name,
       nullif(c.city, ''),
       coalesce(l.total, 0), coalesce((l.by_value ->> 'on')::integer, 0),
       coalesce((l.by_value ->> 'off')::integer, 0),
       coalesce((l.by_value ->> 'fault')::integer, 0),
       coalesce((l.by_value ->> 'maintenance')::integer, 0), coalesce(l.by_value, '{{}}'),
       coalesce(w.total, 0), coalesce((w.by_value ->> 'active')::integer, 0),
       coalesce((w.by_value ->> 'offline')::integer, 0),
       coalesce(cam.total, 0), coalesce((cam.by_value ->> 'online')::integer, 0),
       coalesce((cam.by_value ->> 'offline')::integer, 0), coalesce(k.by_value, '{{}}'),
       coalesce(s.total, 0), coalesce((s.by_value ->> 'online')::integer, 0),
       coalesce(r.water, '{{}}'), coalesce(r.air, '{{}}'), r.latest_at,
       coalesce(i.open, 0), coalesce(i.lt_1d, 0), coalesce(i.d1_7, 0), coalesce(i.gt_7d, 0),
       coalesce(i.by_category, '{{}}'), %(run_id)s::bigint, c.geom
FROM admin.communes_current c
LEFT JOIN lamps l USING (commune_code, admin_vintage)
LEFT JOIN wifi w USING (commune_code, admin_vintage)
LEFT JOIN cameras cam USING (commune_code, admin_vintage)
LEFT JOIN camera_kinds k USING (commune_code, admin_vintage)
LEFT JOIN sensors s USING (commune_code, admin_vintage)
LEFT JOIN readings r USING (commune_code, admin_vintage)
LEFT JOIN incidents i ON i.commune_code = c.commune_code AND c.admin_vintage = '2025'
