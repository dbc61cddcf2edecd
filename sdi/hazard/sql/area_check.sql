-- The area asked about (GeoJSON, CRS84) checked: valid, with an area, inside the province
-- extent (west, south, east, north); its WKB.
SELECT ST_IsValid(g), ST_IsValidReason(g), ST_Area(g) > 0,
       ST_CoveredBy(g, ST_MakeEnvelope(%s, %s, %s, %s, 4326)), ST_AsBinary(g)
FROM (SELECT ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326) AS g) a
