-- `sdi hazard risk`: the combined level per commune (Article 4 clause 4), highest first.
SELECT coalesce(commune_name, commune_code), level, raised_by,
       array_to_string(hazard_names, ', ')
FROM hazard.combined_levels_current ORDER BY level DESC, commune_code
