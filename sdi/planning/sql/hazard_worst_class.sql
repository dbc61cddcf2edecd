-- The worst class of a feature's zones of one hazard. A template (sdi.sql.query).
(array_agg(class ORDER BY rank DESC NULLS LAST, class_order DESC NULLS LAST, class DESC)
    FILTER (WHERE hazard = {name}))[1]
