"""storm digests: a claim priority of their own (before news of one incident), and the part
whose post was attempted, so that a post whose answer was lost is found instead of doubled

Revision ID: 0009_storm_digests
Revises: 0008_storms
Create Date: 2026-12-06 12:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_storm_digests"
down_revision = "0008_storms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # bot.queue.outbox.Priority gained DIGEST = 1: every level after people's moves one down
    op.execute("UPDATE outbox SET priority = priority + 1 WHERE priority >= 1")
    op.execute("UPDATE outbox SET priority = 1 WHERE kind = 'storm_digest'")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("priority", server_default="4", existing_type=sa.Integer())
    with op.batch_alter_table("storms") as batch:
        batch.add_column(sa.Column("posting_part", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("storms") as batch:
        batch.drop_column("posting_part")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("priority", server_default="3", existing_type=sa.Integer())
    op.execute("UPDATE outbox SET priority = 2 WHERE kind = 'storm_digest'")
    op.execute("UPDATE outbox SET priority = priority - 1 WHERE priority >= 2")
