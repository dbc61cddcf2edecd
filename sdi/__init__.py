"""Urban spatial data infrastructure: department files → ETL → PostGIS → OGC API."""

__version__ = "0.1.0"
