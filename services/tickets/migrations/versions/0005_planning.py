"""planning: milestones with maintained progress, relations, ticket milestone and parent

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:00:00.000000

Adding two nullable columns without a default does not rewrite `tickets`; the new
indexes are partial on live tickets. A milestone's `total` and `done` are kept by the
trigger below in the same transaction as every ticket write that changes them
(docs/adr/0039); the done-category statuses are `done` and `closed`, as
`bugtracker_tickets.domain.tickets.DONE_STATUSES` says. Likewise a ticket's
`open_blockers` (how many live, unfinished tickets block it) is kept by the triggers on
relations and on tickets' status and deletion below, so `is=blocked` is an index scan.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")

PROGRESS_FUNCTION = """
CREATE FUNCTION tickets.milestone_progress() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_counted boolean := TG_OP <> 'INSERT'
        AND OLD.milestone_id IS NOT NULL AND OLD.deleted_at IS NULL;
    is_counted boolean := TG_OP <> 'DELETE'
        AND NEW.milestone_id IS NOT NULL AND NEW.deleted_at IS NULL;
    was_done integer := CASE WHEN TG_OP <> 'INSERT'
        AND OLD.status IN ('done', 'closed') THEN 1 ELSE 0 END;
    is_done integer := CASE WHEN TG_OP <> 'DELETE'
        AND NEW.status IN ('done', 'closed') THEN 1 ELSE 0 END;
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

TRIGGERS = (
    """
CREATE TRIGGER milestone_progress_insert AFTER INSERT ON tickets.tickets
FOR EACH ROW WHEN (NEW.milestone_id IS NOT NULL)
EXECUTE FUNCTION tickets.milestone_progress()
""",
    """
CREATE TRIGGER milestone_progress_update
AFTER UPDATE OF milestone_id, status, deleted_at ON tickets.tickets
FOR EACH ROW WHEN (
    (OLD.milestone_id IS NOT NULL OR NEW.milestone_id IS NOT NULL)
    AND (OLD.milestone_id IS DISTINCT FROM NEW.milestone_id
         OR OLD.status IS DISTINCT FROM NEW.status
         OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
)
EXECUTE FUNCTION tickets.milestone_progress()
""",
    """
CREATE TRIGGER milestone_progress_delete AFTER DELETE ON tickets.tickets
FOR EACH ROW WHEN (OLD.milestone_id IS NOT NULL)
EXECUTE FUNCTION tickets.milestone_progress()
""",
)

# `tickets.open_blockers`: the `blocks` relations whose source is an open blocker (live,
# not in a done-category status). A relation counts from its insert to its delete while
# its source is open; a source that opens or finishes moves every ticket it blocks. The
# source row is locked (FOR SHARE) so that a concurrent transition of it waits, or is
# waited for, and is counted once. A relation removed by the cascade of its source's
# hard delete finds no source and changes nothing (tickets are only soft-deleted, which
# the update trigger counts). The counter's UPDATE names no column the update triggers
# are OF, so it fires neither them nor milestone_progress_update.
BLOCKERS_FUNCTIONS = (
    """
CREATE FUNCTION tickets.open_blockers_relation() RETURNS trigger
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
    SELECT s.deleted_at IS NULL AND s.status NOT IN ('done', 'closed') INTO counted
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
CREATE FUNCTION tickets.open_blockers_source() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tickets.tickets t
    SET open_blockers = t.open_blockers
        + CASE WHEN NEW.deleted_at IS NULL AND NEW.status NOT IN ('done', 'closed')
               THEN 1 ELSE -1 END
    FROM tickets.relations r
    WHERE r.source_id = NEW.id AND r.type = 'blocks' AND t.id = r.target_id;
    RETURN NULL;
END
$$
""",
)

BLOCKERS_TRIGGERS = (
    """
CREATE TRIGGER open_blockers_insert AFTER INSERT ON tickets.relations
FOR EACH ROW WHEN (NEW.type = 'blocks')
EXECUTE FUNCTION tickets.open_blockers_relation()
""",
    """
CREATE TRIGGER open_blockers_delete AFTER DELETE ON tickets.relations
FOR EACH ROW WHEN (OLD.type = 'blocks')
EXECUTE FUNCTION tickets.open_blockers_relation()
""",
    """
CREATE TRIGGER open_blockers_source AFTER UPDATE OF status, deleted_at ON tickets.tickets
FOR EACH ROW WHEN (
    (OLD.deleted_at IS NULL AND OLD.status NOT IN ('done', 'closed'))
    IS DISTINCT FROM (NEW.deleted_at IS NULL AND NEW.status NOT IN ('done', 'closed'))
)
EXECUTE FUNCTION tickets.open_blockers_source()
""",
)


def upgrade() -> None:
    op.create_table(
        "milestones",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "due_sort",
            sa.Date(),
            sa.Computed("COALESCE(due_date, 'infinity'::date)", persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="tickets",
    )
    op.create_index(
        "ux_milestones_project_name",
        "milestones",
        ["project_id", sa.text("lower(name)")],
        unique=True,
        schema="tickets",
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_milestones_project_list",
        "milestones",
        ["project_id", "state", "due_sort", "name", "id"],
        schema="tickets",
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_milestones_deleted",
        "milestones",
        ["deleted_at"],
        schema="tickets",
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.add_column("tickets", sa.Column("milestone_id", sa.Uuid(), nullable=True), schema="tickets")
    op.add_column("tickets", sa.Column("parent_id", sa.Uuid(), nullable=True), schema="tickets")
    op.add_column(
        "tickets",
        sa.Column("open_blockers", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="tickets",
    )
    op.create_foreign_key(
        "tickets_milestone_id_fkey",
        "tickets",
        "milestones",
        ["milestone_id"],
        ["id"],
        source_schema="tickets",
        referent_schema="tickets",
    )
    op.create_foreign_key(
        "tickets_parent_id_fkey",
        "tickets",
        "tickets",
        ["parent_id"],
        ["id"],
        source_schema="tickets",
        referent_schema="tickets",
    )
    op.create_index(
        "ix_tickets_milestone_updated",
        "tickets",
        ["milestone_id", "updated_at", "id"],
        schema="tickets",
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_tickets_milestone_any",
        "tickets",
        ["milestone_id"],
        schema="tickets",
        postgresql_where=sa.text("milestone_id IS NOT NULL"),
    )
    op.create_index(
        "ix_tickets_parent_number",
        "tickets",
        ["parent_id", "number"],
        schema="tickets",
        postgresql_where=LIVE,
    )
    op.create_index(
        "ix_tickets_blocked",
        "tickets",
        ["project_id", "updated_at", "id"],
        schema="tickets",
        postgresql_where=sa.text("deleted_at IS NULL AND open_blockers > 0"),
    )
    op.create_table(
        "relations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source_id", sa.Uuid(), nullable=False),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["tickets.tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_id"], ["tickets.tickets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "target_id", "type"),
        schema="tickets",
    )
    op.create_index(
        "ix_relations_target",
        "relations",
        ["target_id", "type", "source_id"],
        schema="tickets",
    )
    op.execute(PROGRESS_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)
    for statement in (*BLOCKERS_FUNCTIONS, *BLOCKERS_TRIGGERS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER open_blockers_source ON tickets.tickets")
    for name in ("delete", "insert"):
        op.execute(f"DROP TRIGGER open_blockers_{name} ON tickets.relations")
    for function in ("source", "relation"):
        op.execute(f"DROP FUNCTION tickets.open_blockers_{function}()")
    for name in ("delete", "update", "insert"):
        op.execute(f"DROP TRIGGER milestone_progress_{name} ON tickets.tickets")
    op.execute("DROP FUNCTION tickets.milestone_progress()")
    op.drop_index("ix_relations_target", table_name="relations", schema="tickets")
    op.drop_table("relations", schema="tickets")
    op.drop_index("ix_tickets_blocked", table_name="tickets", schema="tickets")
    op.drop_index("ix_tickets_parent_number", table_name="tickets", schema="tickets")
    op.drop_index("ix_tickets_milestone_any", table_name="tickets", schema="tickets")
    op.drop_index("ix_tickets_milestone_updated", table_name="tickets", schema="tickets")
    op.drop_constraint("tickets_parent_id_fkey", "tickets", schema="tickets")
    op.drop_constraint("tickets_milestone_id_fkey", "tickets", schema="tickets")
    op.drop_column("tickets", "open_blockers", schema="tickets")
    op.drop_column("tickets", "parent_id", schema="tickets")
    op.drop_column("tickets", "milestone_id", schema="tickets")
    op.drop_index("ix_milestones_deleted", table_name="milestones", schema="tickets")
    op.drop_index("ix_milestones_project_list", table_name="milestones", schema="tickets")
    op.drop_index("ux_milestones_project_name", table_name="milestones", schema="tickets")
    op.drop_table("milestones", schema="tickets")
