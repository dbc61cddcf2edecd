-- What the exposure figures depend on, in one line: for each exposed layer its latest run
-- (indexed) and its current rows (a retirement writes no run), and the model's parameters.
-- Figures counted under another stamp are stale (sdi.hazard.risk, hazard.area_exposure).
SELECT concat_ws('|',
    (SELECT max(run_id) FROM construction.buildings),
    (SELECT count(*) FROM construction.buildings_current),
    (SELECT max(run_id) FROM land.parcels),
    (SELECT count(*) FROM land.parcels_current),
    (SELECT max(run_id) FROM utility.street_lamps),
    (SELECT count(*) FROM utility.street_lamps_current),
    (SELECT max(run_id) FROM utility.water_pipes),
    (SELECT count(*) FROM utility.water_pipes_current),
    (SELECT max(run_id) FROM utility.cameras),
    (SELECT count(*) FROM utility.cameras_current),
    (SELECT max(run_id) FROM admin.communes),
    (SELECT count(*) FROM admin.communes_current),
    md5(%(model)s::text))
