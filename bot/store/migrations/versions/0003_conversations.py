"""conversations: roots recorded before they are posted; direct lines shared by incidents

Revision ID: 0003_conversations
Revises: 0002_escalation
Create Date: 2026-12-06 06:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_conversations"
down_revision = "0002_escalation"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_constraint("uq_threads_platform_channel_thread_id", type_="unique")
        batch.alter_column("thread_id", existing_type=sa.String(length=200), nullable=True)
        batch.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="posted")
        )
        batch.add_column(sa.Column("post_key", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("shown_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("prompt_action_id", _ID, nullable=True))
        batch.add_column(sa.Column("prompt_message_id", sa.String(length=200), nullable=True))
        batch.create_index("ix_threads_conversation", ["platform", "channel", "thread_id"])


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_index("ix_threads_conversation")
        for column in (
            "prompt_message_id",
            "prompt_action_id",
            "shown_status",
            "last_sent_at",
            "post_key",
            "state",
        ):
            batch.drop_column(column)
        batch.alter_column("thread_id", existing_type=sa.String(length=200), nullable=False)
        batch.create_unique_constraint(
            "uq_threads_platform_channel_thread_id", ["platform", "channel", "thread_id"]
        )
