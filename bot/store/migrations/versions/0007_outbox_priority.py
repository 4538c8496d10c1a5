"""outbox priorities: people's work first, then news of incidents, then diagnoses, then the rest

Revision ID: 0007_outbox_priority
Revises: 0006_replicas
Create Date: 2026-12-06 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_outbox_priority"
down_revision = "0006_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="3"))
    op.create_index("ix_outbox_claim", "outbox", ["status", "priority", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_claim", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
