"""tracker configuration: workflow and ticket types as data, custom fields

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 11:00:00.000000

A project's workflow, ticket types and custom fields become data (docs/adr/0040). The
milestone progress and open-blocker triggers of 0005 named the done statuses (`done`,
`closed`); they now read the ticket's `status_category`, which the service writes with
the status (from the project's workflow) and which a workflow change updates. Existing
tickets get the categories of the default workflow. Widening a varchar does not rewrite
`tickets`; the category backfill rewrites the tickets that are not `todo`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRESS_FUNCTION = """
CREATE OR REPLACE FUNCTION tickets.milestone_progress() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_counted boolean := TG_OP <> 'INSERT'
        AND OLD.milestone_id IS NOT NULL AND OLD.deleted_at IS NULL;
    is_counted boolean := TG_OP <> 'DELETE'
        AND NEW.milestone_id IS NOT NULL AND NEW.deleted_at IS NULL;
    was_done integer := CASE WHEN TG_OP <> 'INSERT'
        AND OLD.status_category = 'done' THEN 1 ELSE 0 END;
    is_done integer := CASE WHEN TG_OP <> 'DELETE'
        AND NEW.status_category = 'done' THEN 1 ELSE 0 END;
BEGIN
    IF was_counted AND is_counted AND OLD.milestone_id = NEW.milestone_id THEN
        IF was_done <> is_done THEN
            UPDATE tickets.milestones SET done = done + is_done - was_done
            WHERE id = NEW.milestone_id;
        END IF;
        RETURN NULL;
    END IF;
    IF was_counted THEN
        UPDATE tickets.milestones SET total = total - 1, done = done - was_done
        WHERE id = OLD.milestone_id;
    END IF;
    IF is_counted THEN
        UPDATE tickets.milestones SET total = total + 1, done = done + is_done
        WHERE id = NEW.milestone_id;
    END IF;
    RETURN NULL;
END
$$
"""

PROGRESS_TRIGGER = """
CREATE TRIGGER milestone_progress_update
AFTER UPDATE OF milestone_id, status_category, deleted_at ON tickets.tickets
FOR EACH ROW WHEN (
    (OLD.milestone_id IS NOT NULL OR NEW.milestone_id IS NOT NULL)
    AND (OLD.milestone_id IS DISTINCT FROM NEW.milestone_id
         OR OLD.status_category IS DISTINCT FROM NEW.status_category
         OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
)
EXECUTE FUNCTION tickets.milestone_progress()
"""

BLOCKERS_FUNCTIONS = (
    """
CREATE OR REPLACE FUNCTION tickets.open_blockers_relation() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    relation tickets.relations;
    counted boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        relation := NEW;
    ELSE
        relation := OLD;
    END IF;
    SELECT s.deleted_at IS NULL AND s.status_category <> 'done' INTO counted
    FROM tickets.tickets s WHERE s.id = relation.source_id FOR SHARE;
    IF counted THEN
        UPDATE tickets.tickets
        SET open_blockers = open_blockers + CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END
        WHERE id = relation.target_id;
    END IF;
    RETURN NULL;
END
$$
""",
    """
CREATE OR REPLACE FUNCTION tickets.open_blockers_source() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tickets.tickets t
    SET open_blockers = t.open_blockers
        + CASE WHEN NEW.deleted_at IS NULL AND NEW.status_category <> 'done'
               THEN 1 ELSE -1 END
    FROM tickets.relations r
    WHERE r.source_id = NEW.id AND r.type = 'blocks' AND t.id = r.target_id;
    RETURN NULL;
END
$$
""",
)

BLOCKERS_TRIGGER = """
CREATE TRIGGER open_blockers_source
AFTER UPDATE OF status_category, deleted_at ON tickets.tickets
FOR EACH ROW WHEN (
    (OLD.deleted_at IS NULL AND OLD.status_category <> 'done')
    IS DISTINCT FROM (NEW.deleted_at IS NULL AND NEW.status_category <> 'done')
)
EXECUTE FUNCTION tickets.open_blockers_source()
"""


def upgrade() -> None:
    # A column a trigger's definition names cannot change type: the triggers that name
    # `status` go first, and come back reading `status_category`.
    op.execute("DROP TRIGGER milestone_progress_update ON tickets.tickets")
    op.execute("DROP TRIGGER open_blockers_source ON tickets.tickets")
    for column in ("type", "status"):
        op.alter_column(
            "tickets",
            column,
            type_=sa.String(length=30),
            existing_type=sa.String(length=16),
            existing_nullable=False,
            schema="tickets",
        )
    op.alter_column(
        "history",
        "field",
        type_=sa.String(length=40),
        existing_type=sa.String(length=32),
        existing_nullable=False,
        schema="tickets",
    )
    op.add_column(
        "tickets",
        sa.Column("status_category", sa.String(length=16), server_default="todo", nullable=False),
        schema="tickets",
    )
    # Before the triggers read the column: the counters already count these as done.
    op.execute(
        "UPDATE tickets.tickets SET status_category = CASE "
        "WHEN status IN ('done', 'closed') THEN 'done' ELSE 'in_progress' END "
        "WHERE status IN ('in_progress', 'in_review', 'done', 'closed')"
    )
    op.alter_column("tickets", "status_category", server_default=None, schema="tickets")
    op.add_column(
        "tickets",
        sa.Column(
            "fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        schema="tickets",
    )
    for statement in (PROGRESS_FUNCTION, PROGRESS_TRIGGER, *BLOCKERS_FUNCTIONS, BLOCKERS_TRIGGER):
        op.execute(statement)

    op.create_table(
        "project_configs",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("workflow", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("workflow_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("ticket_types", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("types_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("project_id"),
        schema="tickets",
    )
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=30), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("ticket_types", postgresql.ARRAY(sa.String(length=30)), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "key"),
        schema="tickets",
    )
    op.create_index(
        "ix_custom_fields_deleted",
        "custom_fields",
        ["project_id", "key"],
        schema="tickets",
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.create_table(
        "field_values",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("field_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.tickets.id"], ondelete="CASCADE"),
        schema="tickets",
    )
    op.create_index(
        "ix_field_values_ticket", "field_values", ["ticket_id", "field_id"], schema="tickets"
    )
    op.create_index(
        "ix_field_values_value",
        "field_values",
        ["field_id", "value", "ticket_id"],
        schema="tickets",
    )
    op.create_index(
        "ix_field_values_number",
        "field_values",
        ["field_id", "number", "ticket_id"],
        schema="tickets",
        postgresql_where=sa.text("number IS NOT NULL"),
    )
    op.create_index(
        "ix_field_values_day",
        "field_values",
        ["field_id", "day", "ticket_id"],
        schema="tickets",
        postgresql_where=sa.text("day IS NOT NULL"),
    )


def _as_0005(statement: str) -> str:
    """A function or trigger of this revision as 0005 wrote it: the done statuses named."""
    return (
        statement.replace("status_category = 'done'", "status IN ('done', 'closed')")
        .replace("status_category <> 'done'", "status NOT IN ('done', 'closed')")
        .replace("status_category", "status")
    )


def downgrade() -> None:
    """Back to the fixed workflow; tickets in statuses or types it does not have (or with
    longer keys) must be moved first, or the narrowing below fails."""
    op.drop_table("field_values", schema="tickets")
    op.drop_index("ix_custom_fields_deleted", table_name="custom_fields", schema="tickets")
    op.drop_table("custom_fields", schema="tickets")
    op.drop_table("project_configs", schema="tickets")
    op.execute("DROP TRIGGER milestone_progress_update ON tickets.tickets")
    op.execute("DROP TRIGGER open_blockers_source ON tickets.tickets")
    op.drop_column("tickets", "fields", schema="tickets")
    op.drop_column("tickets", "status_category", schema="tickets")
    op.alter_column(
        "history",
        "field",
        type_=sa.String(length=32),
        existing_type=sa.String(length=40),
        existing_nullable=False,
        schema="tickets",
    )
    for column in ("type", "status"):
        op.alter_column(
            "tickets",
            column,
            type_=sa.String(length=16),
            existing_type=sa.String(length=30),
            existing_nullable=False,
            schema="tickets",
        )
    # Functions first (they read `status` again), then the triggers naming `status`.
    for statement in (PROGRESS_FUNCTION, PROGRESS_TRIGGER, *BLOCKERS_FUNCTIONS, BLOCKERS_TRIGGER):
        op.execute(_as_0005(statement))
