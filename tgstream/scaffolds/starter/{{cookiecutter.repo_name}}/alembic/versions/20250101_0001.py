"""create the items table

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('value', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
        sa.UniqueConstraint('name', name=op.f('uq_items_name')),
    )


def downgrade():
    op.drop_table('items')
