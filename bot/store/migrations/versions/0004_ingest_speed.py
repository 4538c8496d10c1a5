"""ingest at disk speed: short ids from a sequence (PostgreSQL), alert digests, indexes

Revision ID: 0004_ingest_speed
Revises: 0003_conversations
Create Date: 2026-12-06 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ingest_speed"
down_revision = "0003_conversations"
branch_labels = None
depends_on = None

SEQUENCE = "incident_short_id_seq"
COUNTER = "incident_short_id"
INDEXES = (
    ("incidents", "ix_incidents_group_short", ["group_key", "short_id"]),
    ("incidents", "ix_incidents_created", ["created_at"]),
    ("deliveries", "ix_deliveries_received", ["received_at"]),
    ("outbox", "ix_outbox_done", ["status", "done_at"]),
    ("diagnoses", "ix_diagnoses_incident", ["incident_id", "id"]),
    ("actions", "ix_actions_incident", ["incident_id", "id"]),
    ("tickets", "ix_tickets_incident", ["incident_id", "id"]),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # continue after the highest number handed out by the old counter row
        op.execute(sa.text(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}"))
        op.execute(
            sa.text(
                f"SELECT setval('{SEQUENCE}', GREATEST(1, "
                "(SELECT COALESCE(MAX(short_id), 0) FROM incidents), "
                f"(SELECT COALESCE(MAX(value), 0)::bigint FROM counters WHERE name = '{COUNTER}')"
                f"), (SELECT COUNT(*) > 0 FROM incidents))"
            )
        )
    op.execute(sa.text(f"DELETE FROM counters WHERE name = '{COUNTER}'"))
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_index("ix_incidents_group_key")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=32), nullable=True))
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for table, name, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("digest")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.create_index("ix_incidents_group_key", ["group_key"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"DROP SEQUENCE IF EXISTS {SEQUENCE}"))
