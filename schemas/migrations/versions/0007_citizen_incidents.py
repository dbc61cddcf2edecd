"""Citizen incident reports with a change log, and API keys with write rights (issue 6).

``ops.incidents`` holds the reports citizens' apps send through OGC API Features Part 4
(``sdi.api.incidents``): a point, a category (``etl/codes/incident_categories.yml``), a bounded
description, the status of the workflow new → assigned → resolved, the commune the point is in
(derived by the API, never taken from the client), and the reporter's contact details, which
are personal data and never published (``layers/incidents.yml`` lists them as ``personal``).
Reports are never deleted: an incident is resolved, and its history stays in the log.

``ops.incident_log`` has one row per create or change: the old and new status, the values that
changed (personal values are written as ``"(personal)"``: the log says *that* a phone number
changed, not what it was), and who did it — the API key's id, name and department — and when.

``auth.api_keys.write_collections`` lists the collections a key may write to
(``sdi keys create … --write incidents``); an administrator's key (``*``) may write anywhere.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS ops;

        CREATE TABLE ops.incidents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            category text NOT NULL CHECK (category ~ '^[a-z0-9_]+$'),
            status text NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'assigned', 'resolved')),
            description text NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
            reported_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz,
            assigned_to text CHECK (length(assigned_to) <= 200),
            commune_code text,
            reporter_name text CHECK (length(reporter_name) <= 200),
            reporter_phone text CHECK (length(reporter_phone) <= 32),
            reporter_email text CHECK (length(reporter_email) <= 254),
            created_by text,
            geom geometry(Point, 4326) NOT NULL
        );
        CREATE INDEX incidents_geom ON ops.incidents USING gist (geom);
        CREATE INDEX incidents_open ON ops.incidents (commune_code, category)
            WHERE status <> 'resolved';

        CREATE TABLE ops.incident_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            incident_id bigint NOT NULL REFERENCES ops.incidents (id),
            action text NOT NULL CHECK (action IN ('create', 'update')),
            old_status text,
            new_status text NOT NULL,
            old_values jsonb NOT NULL DEFAULT '{}',
            new_values jsonb NOT NULL DEFAULT '{}',
            key_id text NOT NULL,
            key_name text NOT NULL,
            department text NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX incident_log_incident ON ops.incident_log (incident_id, changed_at);

        -- The log is an audit trail: rows are added, never changed or removed (the foreign
        -- key above also keeps an incident with a history from being deleted).
        CREATE FUNCTION ops.incident_log_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ops.incident_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER incident_log_append_only
            BEFORE UPDATE OR DELETE ON ops.incident_log
            FOR EACH ROW EXECUTE FUNCTION ops.incident_log_append_only();
        CREATE TRIGGER incident_log_no_truncate
            BEFORE TRUNCATE ON ops.incident_log
            FOR EACH STATEMENT EXECUTE FUNCTION ops.incident_log_append_only();

        COMMENT ON TABLE ops.incidents IS
            'citizen incident reports, written through OGC API Features Part 4 (sdi.api.incidents)';
        COMMENT ON COLUMN ops.incidents.commune_code IS
            'the 2025 commune containing geom, derived by the API';
        COMMENT ON COLUMN ops.incidents.created_by IS
            'API key (id: name, department) that created the report';
        COMMENT ON TABLE ops.incident_log IS
            'every create and change of an incident: old/new status and values, key, time';

        ALTER TABLE auth.api_keys
            ADD COLUMN write_collections text[] NOT NULL DEFAULT '{}';
        COMMENT ON COLUMN auth.api_keys.write_collections IS
            'collections the key may write to (OGC API Features Part 4); * keys write anywhere';
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE auth.api_keys DROP COLUMN IF EXISTS write_collections")
    op.execute("DROP TABLE IF EXISTS ops.incident_log")
    op.execute("DROP FUNCTION IF EXISTS ops.incident_log_append_only()")
    op.execute("DROP TABLE IF EXISTS ops.incidents")
