-- Parcels or buildings in hazard zones. A template (sdi.sql.query): the hits are
-- hazard_hits_flood.sql and hazard_hits_zone.sql per zone hazard, the classes
-- hazard_worst_class.sql per zone hazard.
-- One row per (feature, zone it touches) for every hazard, then one aggregation per feature:
-- a single pass that needs no join between hazards (robust to poor row estimates right after a
-- load). Nested flood zones (10 ⊂ 50 ⊂ 100 years): a feature touching several gets the most
-- frequent flood (smallest return period) and that zone's depth class; all its zones are
-- listed. Landslide and storm surge: the worst class (ZONE_HAZARDS).
WITH hits AS ({hits}),
per_feature AS (
    SELECT id, array_agg(DISTINCT hazard ORDER BY hazard) AS hazards,
           min(return_period) AS return_period,
           (array_agg(depth_class ORDER BY return_period, zone_code)
              FILTER (WHERE hazard = 'flood'))[1] AS depth_class,
           array_agg(zone_code ORDER BY return_period, zone_code)
              FILTER (WHERE hazard = 'flood') AS zone_codes,
           {classes}
    FROM hits GROUP BY id
)
INSERT INTO {target} (id, natural_key, commune_code, admin_vintage, {own},
    hazards, flood_return_period_years, flood_depth_class, flood_zone_codes,
    {class_columns}, run_id, geom)
SELECT f.id, f.natural_key, f.commune_code, f.admin_vintage, {own_f},
       h.hazards, h.return_period, h.depth_class, h.zone_codes, {class_columns},
       %(run_id)s::bigint, f.geom
FROM per_feature h JOIN {source} f USING (id)
