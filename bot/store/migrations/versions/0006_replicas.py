"""replicas: heartbeat rows, the owner of a running action, shared rate budgets

Revision ID: 0006_replicas
Revises: 0005_sent_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_replicas"
down_revision = "0005_sent_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replicas")),
    )
    op.create_index(op.f("ix_replicas_name"), "replicas", ["name"], unique=False)
    op.create_table(
        "rate_budgets",
        sa.Column("destination", sa.String(length=300), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("stamp", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("destination", name=op.f("pk_rate_budgets")),
    )
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("owner", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("owner")
    op.drop_table("rate_budgets")
    op.drop_index(op.f("ix_replicas_name"), table_name="replicas")
    op.drop_table("replicas")
