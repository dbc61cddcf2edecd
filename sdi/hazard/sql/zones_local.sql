ALTER TABLE sdi_warning_zone ADD COLUMN geom_local geometry;
UPDATE sdi_warning_zone SET geom_local = ST_Transform(geom, %(srid)s::int);
ANALYZE sdi_warning_zone
