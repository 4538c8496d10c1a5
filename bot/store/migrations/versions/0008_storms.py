"""storms: one digest message per channel for a storm of new incidents

Revision ID: 0008_storms
Revises: 0007_outbox_priority
Create Date: 2026-12-06 09:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_storms"
down_revision = "0007_outbox_priority"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "storms",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_new_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("edits", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storms")),
        sa.UniqueConstraint("open_key", name=op.f("uq_storms_open_key")),
    )
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("storm_id", _ID, nullable=True))
        batch.create_index("ix_threads_storm", ["storm_id"])


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_index("ix_threads_storm")
        batch.drop_column("storm_id")
    op.drop_table("storms")
