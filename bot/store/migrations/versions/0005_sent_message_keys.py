"""sent_messages.post_key: the root a message was sent as (found again after a crash)

Revision ID: 0005_sent_keys
Revises: 0004_ingest_speed
Create Date: 2026-12-06 07:35:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_sent_keys"
down_revision = "0004_ingest_speed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sent_messages") as batch:
        batch.add_column(sa.Column("post_key", sa.String(length=100), nullable=True))
        batch.create_index("ix_sent_messages_post_key", ["post_key"])


def downgrade() -> None:
    with op.batch_alter_table("sent_messages") as batch:
        batch.drop_index("ix_sent_messages_post_key")
        batch.drop_column("post_key")
