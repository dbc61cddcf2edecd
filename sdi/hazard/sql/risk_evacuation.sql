-- The evacuation list: residential buildings exposed in the areas named in %(evacuate)s
-- (risk key → hazard, level, area code), with their residents estimate; those areas' rows
-- are replaced (the other areas' rows are kept or removed by sdi.hazard.risk).
DELETE FROM hazard.evacuation_list
WHERE risk_key IN (SELECT jsonb_object_keys(%(evacuate)s::jsonb));
INSERT INTO hazard.evacuation_list (risk_key, hazard, level, area_code, building_id,
    building_code, building_name, floors, residents_estimate, commune_code, geom)
SELECT b.gauge_code, e.hazard, e.level, e.area_code, b.id, b.building_code, b.name, b.floors,
       round(greatest(coalesce(b.floors, 1), 1) * %(persons_per_floor)s::numeric)::int,
       b.commune_code, ST_Multi(b.geom)
FROM sdi_exposed_buildings b
JOIN jsonb_each(%(evacuate)s::jsonb) AS k(key, v) ON k.key = b.gauge_code
CROSS JOIN LATERAL jsonb_to_record(k.v) AS e(hazard text, level int, area_code text)
WHERE b.use_type = 'residential'
ORDER BY b.gauge_code, b.building_code
