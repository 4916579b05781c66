"""reconcile snapshots: what AiAccount holds per blogger, type and MYT day

Revision ID: b7c3e9a41d20
Revises: 671f617feb0d
Create Date: 2026-11-24 05:35:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c3e9a41d20'
down_revision = '671f617feb0d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reconcile_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blogger_id', sa.Integer(), nullable=False),
    sa.Column('sync_type', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('documents', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("sync_type IN ('pos_invoice', 'pos_receipt', 'kol_bill', 'kol_payment')",
                       name=op.f('ck_reconcile_snapshots_sync_type')),
    sa.ForeignKeyConstraint(['blogger_id'], ['bloggers.id'],
                            name=op.f('fk_reconcile_snapshots_blogger_id_bloggers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconcile_snapshots')),
    sa.UniqueConstraint('blogger_id', 'sync_type', 'day', name='uq_reconcile_snapshots_blogger_type_day')
    )


def downgrade():
    op.drop_table('reconcile_snapshots')
