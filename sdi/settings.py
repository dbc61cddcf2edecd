"""One typed settings object for the CLI, the ETL, publishing and the server.

Every value can be set with an ``SDI_``-prefixed environment variable or in a ``.env`` file
at the project root; nothing else in the code reads ``os.environ`` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    province_code: str = Field(
        "22",
        pattern=r"^[0-9]{2}$",
        description="Province code (GSO) of rows whose commune the communes layer does not know",
    )
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
    # The same metadata in Vietnamese, the service's first language (the fields above: English).
    service_title_vi: str = Field("Hạ tầng dữ liệu không gian đô thị — Quảng Ninh")
    service_description_vi: str = Field(
        "Các lớp dữ liệu đất đai, xây dựng, hạ tầng kỹ thuật và thiên tai của các đô thị thông "
        "minh trong tỉnh, hợp nhất từ dữ liệu các sở, ngành gửi về và công bố dưới dạng các "
        "tập dữ liệu OGC API."
    )
    organisation_vi: str = Field("Sở Khoa học và Công nghệ tỉnh Quảng Ninh")

    # Web pages (sdi.api.pages): the base map of their maps. None: the communes of the service
    # itself; else an intranet XYZ tile server, e.g. http://tiles.intranet/{z}/{x}/{y}.png
    # (never a public internet server: most provincial networks have no route to it).
    basemap_url: str | None = Field(None, description="XYZ tile URL of the pages' base map")
    basemap_attribution: str = Field("", description="Attribution shown under that base map")

    # ETL.
    source_dir: Path = Field(
        PROJECT_DIR / ".sdi" / "inbox",
        description="The inbox: one folder per department (land/, construction/, …) where "
        "deliveries are dropped; job specs' relative source.path point here",
    )
    jobs_dir: Path = Field(PROJECT_DIR / "etl" / "jobs", description="ETL job specifications")
    layers_dir: Path = Field(PROJECT_DIR / "layers", description="Published collection definitions")
    pygeoapi_config: Path = Field(
        PROJECT_DIR / "pygeoapi-config.yml", description="Generated pygeoapi configuration"
    )

    # Deliveries (issue 12): samples apart from the inbox; uploads through `etl-run`.
    samples_dir: Path = Field(
        PROJECT_DIR / "etl" / "samples",
        description="Where `sdi sample generate` writes the sample deliveries; `sdi up` links "
        "each sample department folder into the inbox where the inbox has none",
    )
    upload_max_mb: int = Field(
        200, description="Largest file or zip a department may upload to the etl-run process"
    )
    # Jobs (sdi.jobs: PostgreSQL job store, procrastinate queue, `sdi worker`) and bounded work
    # per request and client (sdi.api.limits, sdi.api.processes).
    job_retention_hours: float = Field(
        168.0, description="Hours a finished async job and its result are kept, then purged"
    )
    worker_concurrency: int = Field(2, description="Jobs one `sdi worker` runs at once (threads)")
    worker_stalled_seconds: float = Field(
        30.0,
        description="A worker whose heartbeat is older than this is dead: its running process "
        "jobs are marked failed, its ETL runs re-queued",
    )
    serve_worker: bool = Field(
        True, description="`sdi serve start` / `sdi up` also start one `sdi worker`"
    )
    max_body_bytes: int = Field(
        2_097_152, description="Largest request body accepted (413 above it), every route"
    )
    process_max_vertices: int = Field(
        20_000, description="Most vertices a process's geometry inputs may have (400 above it)"
    )
    process_concurrency: int = Field(
        1, description="Process executions at once per server worker process (429 above it)"
    )
    process_timeout_s: float = Field(
        60.0, description="Statement timeout of a process's queries (server and worker)"
    )
    rate_limit_anonymous: int = Field(
        1800,
        description="Requests per minute from one client address without a key, counted for "
        "every server worker process and instance together (429 with Retry-After above it); "
        "0 turns the limit off",
    )
    rate_limit_key: int = Field(
        12000,
        description="Requests per minute with one API key, all processes together; 0: off",
    )
    server_max_requests: int = Field(
        20000, description="A server worker process is replaced after this many requests (0: never)"
    )
    server_max_requests_jitter: int = Field(
        2000, description="Random extra requests per worker, so they are not replaced together"
    )
    server_max_memory_mb: int = Field(
        1024, description="A server worker process above this resident size is replaced (0: never)"
    )
    server_drain_s: float = Field(
        6.0,
        description="Seconds a server worker process being replaced still serves, answering "
        "`Connection: close`, before it stops: longer than the keep-alive timeout (5 s), so "
        "no client's kept-alive connection is cut",
    )
    # Hardening (issue 13): roles by purpose, the database away, signed cursors, logs.
    api_database_url: str | None = Field(
        None,
        description="URL the OGC API connects with (a role that reads only what is published "
        "and writes incidents); default: the database URL with the API role and its password "
        "from the state dir (`sdi db roles` creates them)",
    )
    etl_database_url: str | None = Field(
        None,
        description="URL the ETL writes the warehouse with (the ETL role); default: the "
        "database URL with the ETL role, else the owner's URL",
    )
    db_role_prefix: str | None = Field(
        None,
        description="Roles are <prefix>_api and <prefix>_etl; default: the database name",
    )
    db_connect_timeout: float = Field(
        2.0, description="Seconds the API waits for a new database connection"
    )
    db_pool_timeout: float = Field(
        0.75,
        description="Seconds a request waits for a pooled connection before answering 503",
    )
    db_retry_after: int = Field(
        5, description="Retry-After (seconds) of the 503 answered while the database is away"
    )
    cursor_secret: SecretStr | None = Field(
        None,
        description="Key paging cursors are signed with; default: <state>/server/cursor.key "
        "(instances behind one address must share it)",
    )
    log_max_bytes: int = Field(
        50 * 1024 * 1024, description="Size at which the server's logs are rotated"
    )
    log_backups: int = Field(5, description="Rotated server logs kept")
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

    # Past one machine (issue 14): read replicas, several API instances behind a balancer
    # (sdi.db.replica, sdi.api.replicas, sdi.serve; README, "Past one machine").
    read_database_urls: str | None = Field(
        None,
        description="Comma-separated URLs of read replicas the API reads from (writes go to the "
        "primary); default: the local cluster's replicas (`sdi db replica add`)",
    )
    replica_max_lag_s: float = Field(
        5.0, description="A replica further behind the primary than this is skipped (seconds)"
    )
    replica_check_interval_s: float = Field(
        0.5, description="Seconds between two health and lag checks of each replica"
    )
    read_your_writes_wait_s: float = Field(
        0.5,
        description="Longest wait for a replica to replay a client's own last write before "
        "the primary answers instead (seconds)",
    )
    instances: int = Field(
        1,
        description="API instances `sdi serve` starts; above 1, behind an HAProxy balancer on "
        "SDI_PORT, the instances on the following ports",
    )
    instance: str | None = Field(
        None, description="This instance's name (set by `sdi serve`; labels its metrics)"
    )

    @property
    def cluster_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def read_urls(self) -> list[str]:
        """``read_database_urls`` split on commas (empty when unset)."""
        return [u.strip() for u in (self.read_database_urls or "").split(",") if u.strip()]

    @property
    def server_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@lru_cache
def get_settings() -> Settings:
    return Settings()
