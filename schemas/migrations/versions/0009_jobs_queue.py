"""The job system: OGC API Processes jobs and the procrastinate task queue, schema ``jobs``.

- ``jobs.process_jobs``: one row per asynchronous execution of an OGC API process (``sdi.jobs``,
  ``docs/jobs.md``): who created it (the API key's public id), its inputs, status, and its
  result (bytes in the row, so every server instance and worker sees the same job and nothing
  of it lives on one machine's disk). Synchronous executions are never recorded.
- procrastinate's own tables, types and functions (``procrastinate_jobs``, …), created from the
  schema file of the installed procrastinate version, in schema ``jobs`` too: the queue the
  ``sdi worker`` processes take their work from (process jobs, ETL runs, housekeeping).
  Sessions that use the queue put ``jobs`` first in their ``search_path`` (``sdi.jobs.queue``).
  A later procrastinate version with a schema change needs a migration applying its
  ``procrastinate/sql/migrations`` files (the dependency is pinned to one minor version).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from procrastinate.schema import SchemaManager

    op.execute("CREATE SCHEMA IF NOT EXISTS jobs")
    op.execute(
        """
        CREATE TABLE jobs.process_jobs (
            job_id uuid PRIMARY KEY,
            process_id text NOT NULL,
            owner text,
            inputs jsonb NOT NULL,
            requested_response text NOT NULL DEFAULT 'raw',
            status text NOT NULL DEFAULT 'accepted'
                CHECK (status IN ('accepted', 'running', 'successful', 'failed')),
            message text,
            progress integer NOT NULL DEFAULT 0,
            created timestamptz NOT NULL DEFAULT now(),
            started timestamptz,
            updated timestamptz NOT NULL DEFAULT now(),
            finished timestamptz,
            mimetype text,
            result bytea,
            queue_job_id bigint,
            worker text
        )
        """
    )
    op.execute("COMMENT ON COLUMN jobs.process_jobs.owner IS 'API key public id; NULL: none'")
    op.execute("CREATE INDEX process_jobs_owner ON jobs.process_jobs (owner, created DESC)")
    op.execute(
        "CREATE INDEX process_jobs_finished ON jobs.process_jobs (finished) "
        "WHERE finished IS NOT NULL"
    )
    op.execute("CREATE INDEX process_jobs_queue ON jobs.process_jobs (queue_job_id)")
    # procrastinate's DDL names nothing with a schema: it lands in the first schema of the path.
    # Run through the driver directly: its text has '%' and ':' that SQLAlchemy would parse.
    driver = op.get_bind().connection.dbapi_connection
    driver.execute("SET LOCAL search_path = jobs, public")
    driver.execute(SchemaManager.get_schema())
    driver.execute("SET LOCAL search_path = DEFAULT")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS jobs CASCADE")
