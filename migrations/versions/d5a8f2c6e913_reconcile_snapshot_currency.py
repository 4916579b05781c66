"""reconcile snapshots per document currency (a blogger with MYR and SGD stores)

Revision ID: d5a8f2c6e913
Revises: b7c3e9a41d20
Create Date: 2026-11-24 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5a8f2c6e913'
down_revision = 'b7c3e9a41d20'
branch_labels = None
depends_on = None


def upgrade():
    # Existing snapshots were read without the currency; they become MYR rows, and the next
    # "Refresh from AiAccount" replaces them with per-currency figures.
    with op.batch_alter_table('reconcile_snapshots') as batch:
        batch.add_column(sa.Column('currency', sa.String(length=3), server_default='MYR', nullable=False))
        batch.drop_constraint('uq_reconcile_snapshots_blogger_type_day', type_='unique')
        batch.create_unique_constraint('uq_reconcile_snapshots_blogger_type_day_currency',
                                       ['blogger_id', 'sync_type', 'day', 'currency'])


def downgrade():
    # Back to one row per day: keep the first row stored for each day, drop the other currencies.
    op.execute("DELETE FROM reconcile_snapshots WHERE id NOT IN ("
               "SELECT MIN(id) FROM reconcile_snapshots GROUP BY blogger_id, sync_type, day)")
    with op.batch_alter_table('reconcile_snapshots') as batch:
        batch.drop_constraint('uq_reconcile_snapshots_blogger_type_day_currency', type_='unique')
        batch.create_unique_constraint('uq_reconcile_snapshots_blogger_type_day',
                                       ['blogger_id', 'sync_type', 'day'])
        batch.drop_column('currency')
