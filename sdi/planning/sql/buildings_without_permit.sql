INSERT INTO planning.buildings_without_permit (
    id, natural_key, commune_code, admin_vintage, building_code, name, use_type, floors,
    year_built, footprint_m2, category, run_id, geom)
SELECT b.id, b.natural_key, b.commune_code, b.admin_vintage, b.building_code, b.name,
       b.use_type, b.floors, b.year_built, b.footprint_m2,
       CASE WHEN b.year_built < %(register_since)s THEN 'built_before_register'
            ELSE 'no_permit' END,
       %(run_id)s::bigint, b.geom
FROM {buildings} b
WHERE NOT EXISTS (
    SELECT 1 FROM sdi_permit_building_pairs m WHERE m.building_id = b.id AND m.date_fits
)
