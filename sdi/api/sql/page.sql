-- A page of features (sdi.api.provider): the inner query finds the page (rows skipped by
-- OFFSET are never turned into JSON), the outer one builds the GeoJSON of those rows only,
-- with the page's sort key values as text (for the cursor of the next page).
SELECT {feature}::text, {keys}
FROM (
    SELECT {columns} FROM {table} t
    WHERE {where}
    ORDER BY {order}
    LIMIT %(limit)s{skip}
) t
ORDER BY {order}
