"""API keys of the OGC API: who may see internal layers, and who may write.

``auth.api_keys`` holds one row per key issued with ``sdi keys create``. The key itself is
never stored: only its public id (the lookup prefix, also shown by ``sdi keys list``) and
the SHA-256 of the whole key. A key is 32 random bytes, so a fast hash is enough: there is
nothing to brute-force. A revoked key keeps its row (``revoked_at``) for the audit trail.

``department`` is the department the key belongs to (compared with a layer's
``departments``); ``*`` marks an administrator's key, which sees every layer and may write.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS auth;

        CREATE TABLE auth.api_keys (
            key_id text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
            name text NOT NULL CHECK (length(btrim(name)) > 0),
            department text NOT NULL CHECK (department = '*' OR department ~ '^[a-z0-9_.-]+$'),
            key_sha256 bytea NOT NULL CHECK (length(key_sha256) = 32),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by text NOT NULL DEFAULT current_user,
            revoked_at timestamptz
        );
        CREATE UNIQUE INDEX api_keys_hash ON auth.api_keys (key_sha256);

        COMMENT ON TABLE auth.api_keys IS
            'API keys of the OGC API (sdi keys create/list/revoke); only hashes are stored';
        COMMENT ON COLUMN auth.api_keys.department IS
            'department of the key, matched against layers'' departments; * = administrator';
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS auth.api_keys")
    op.execute("DROP SCHEMA IF EXISTS auth")
