-- Age in whole months at the refresh (now() is the transaction's start). Any building at the
-- location counts: the date rule is for naming a building's permit, not for a site's.
INSERT INTO planning.stalled_permits (
    id, natural_key, commune_code, admin_vintage, permit_no, issued_on, status, floors,
    gross_floor_area_m2, address, months_since_issue, run_id, geom)
SELECT p.id, p.natural_key, p.commune_code, p.admin_vintage, p.permit_no, p.issued_on,
       p.status, p.floors, p.gross_floor_area_m2, p.address,
       (extract(year FROM age(now()::date, p.issued_on)) * 12
        + extract(month FROM age(now()::date, p.issued_on)))::integer,
       %(run_id)s::bigint, p.geom
FROM {permits} p
WHERE p.issued_on <= (now() - make_interval(months => %(months)s))::date
  AND NOT EXISTS (SELECT 1 FROM sdi_permit_building_pairs m WHERE m.permit_id = p.id)
