"""ETL: department deliveries → warehouse (read, normalise, validate, stage, merge)."""
