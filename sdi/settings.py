"""One typed settings object for the CLI, the ETL, publishing and the server.

Every value can be set with an ``SDI_``-prefixed environment variable or in a ``.env`` file
at the project root; nothing else in the code reads ``os.environ`` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The checkout this package lives in (installed in editable mode by the setup script).
PROJECT_DIR = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SDI_", env_file=PROJECT_DIR / ".env", extra="ignore"
    )

    home: Path = Field(PROJECT_DIR, description="Project root: etl/, layers/, schemas/ live here")
    state_dir: Path = Field(
        PROJECT_DIR / ".sdi", description="Local state: the database cluster, logs, rasters"
    )

    # Database: an explicit URL wins; otherwise the project's own local cluster is used.
    database_url: str | None = Field(
        None, description="postgresql://user:pass@host:port/db of an existing PostGIS"
    )
    db_port: int = Field(55432, description="Port of the local cluster (127.0.0.1 only)")
    db_name: str = Field("sdi", description="Database name in the local cluster")
    db_user: str = Field("sdi", description="Owner role created in the local cluster")
    db_wal_level: Literal["minimal", "replica", "logical"] = Field(
        "minimal",
        description="wal_level of the local cluster: minimal makes first loads write no WAL; "
        "replica if you stream it to a standby or archive its WAL",
    )

    # Coordinate reference systems of the province being served.
    storage_srid: int = Field(4326, description="Storage CRS of every geometry column")
    province_srid: int = Field(
        5899, description="Provincial VN-2000 TM-3 CRS: legal areas and lengths are computed in it"
    )
    utm_srid: int = Field(3405, description="VN-2000 UTM zone of the province")
    province_extent: tuple[float, float, float, float] = Field(
        (106.4, 20.6, 108.2, 21.7), description="lon/lat box the province's data must fall in"
    )

    # Server.
    host: str = Field("127.0.0.1", description="Address the OGC API listens on")
    port: int = Field(5000, description="Port the OGC API listens on")
    workers: int = Field(2, description="Server worker processes")
    public_url: str | None = Field(None, description="URL clients see; default http://host:port")

    # Service metadata (shown in the landing page, OpenAPI document and catalogue).
    service_title: str = Field("Urban spatial data infrastructure — Quảng Ninh")
    service_description: str = Field(
        "Land, construction, utility and hazard layers of the province's smart cities, "
        "merged from the departments' deliveries and published as OGC API collections."
    )
    organisation: str = Field("Quảng Ninh Department of Science and Technology")
    organisation_url: str = Field("https://example.org/sdi")
    contact_email: str = Field("sdi@example.org")

    # ETL.
    source_dir: Path = Field(
        PROJECT_DIR / "etl" / "samples", description="Where job specs' relative source paths point"
    )
    jobs_dir: Path = Field(PROJECT_DIR / "etl" / "jobs", description="ETL job specifications")
    layers_dir: Path = Field(PROJECT_DIR / "layers", description="Published collection definitions")
    pygeoapi_config: Path = Field(
        PROJECT_DIR / "pygeoapi-config.yml", description="Generated pygeoapi configuration"
    )

    # Downloads (sdi.api.downloads, docs/downloads.md).
    download_anonymous_max_features: int = Field(
        50_000,
        description="Most features an anonymous download may hold; above it the answer is a 413 "
        "asking to narrow the query (bbox, filter) or to use an API key",
    )
    download_key_max_features: int = Field(
        1_000_000,
        description="Most features a download with an API key may hold; above it the answer is "
        "a 413 pointing to the asynchronous `export` process",
    )
    download_batch_rows: int = Field(
        5_000, description="Rows fetched from PostgreSQL at a time while a download streams"
    )

    @property
    def cluster_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def server_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
