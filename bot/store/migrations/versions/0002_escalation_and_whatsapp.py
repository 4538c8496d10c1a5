"""escalation chains, contact windows and delivery statuses

Revision ID: 0002_escalation
Revises: 0001
Create Date: 2026-12-06 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_escalation"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("next_at", TS, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_escalations_incident_id")
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_escalations")),
    )
    op.create_index("ix_escalations_due", "escalations", ["state", "next_at"])
    op.create_table(
        "contacts",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("last_inbound_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("platform", "address", name=op.f("pk_contacts")),
    )
    op.create_table(
        "sent_messages",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=True),
        sa.Column("recipient", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("platform", "message_id", name=op.f("pk_sent_messages")),
    )


def downgrade() -> None:
    op.drop_table("sent_messages")
    op.drop_table("contacts")
    op.drop_index("ix_escalations_due", table_name="escalations")
    op.drop_table("escalations")
