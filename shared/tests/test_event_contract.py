"""docs/asyncapi.yaml is what the event models say, and the models describe every event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from bugtracker_shared.asyncapi import document, envelope_models, render
from bugtracker_shared.event_schemas import (
    EVENT_DATA,
    AuthSessionRevoked,
    ProjectMemberRoleChanged,
    validate_data,
)
from bugtracker_shared.events import CloudEvent, new_event
from pydantic import BaseModel, ValidationError

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
API_MD_EVENTS = [
    "user.registered",
    "user.deactivated",
    "auth.session_revoked",
    "project.created",
    "project.updated",
    "project.archived",
    "project.deleted",
    "project.member_added",
    "project.member_role_changed",
    "project.member_removed",
    "ticket.created",
    "ticket.updated",
    "ticket.assigned",
    "ticket.status_changed",
    "ticket.commented",
    "ticket.deleted",
    "ticket.related",
    "ticket.unrelated",
    "ticket.unblocked",
    "ticket.attachment_added",
    "ticket.attachment_removed",
    "milestone.created",
    "milestone.updated",
    "milestone.deleted",
    "project.workflow_changed",
    "project.ticket_types_changed",
    "project.fields_changed",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.disabled",
]


def test_the_checked_in_asyncapi_file_is_generated_from_the_models() -> None:
    assert ASYNCAPI.read_text() == render(), (
        "docs/asyncapi.yaml is stale: run "
        "`uv run python -m bugtracker_shared.asyncapi > docs/asyncapi.yaml`"
    )


def test_every_event_of_the_contract_is_described() -> None:
    assert list(EVENT_DATA) == API_MD_EVENTS
    doc = yaml.safe_load(ASYNCAPI.read_text())
    assert doc["asyncapi"].startswith("3.")
    assert sorted(ch["address"] for ch in doc["channels"].values()) == sorted(API_MD_EVENTS)
    schemas = doc["components"]["schemas"]
    for name, model in envelope_models().items():
        assert schemas[model.__name__] == document()["components"]["schemas"][model.__name__]
        data_ref = schemas[model.__name__]["properties"]["data"]["$ref"]
        assert data_ref == f"#/components/schemas/{EVENT_DATA[name].__name__}"


def _ticket(**extra: object) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "key": "BUG-1",
        "project_id": str(uuid.uuid4()),
        "title": "Crash",
        "type": "bug",
        "priority": "high",
        "status": "open",
        "resolution": None,
        "reporter_id": str(uuid.uuid4()),
        "assignee_id": None,
        "labels": [],
        "due_date": None,
        "version": 2,
        "created_at": datetime.now(UTC).isoformat(),
        "updated_at": datetime.now(UTC).isoformat(),
        "deleted": False,
    } | extra


def test_ticket_data_without_watchers_means_no_watchers() -> None:
    changes = {"assignee_id": {"from": None, "to": str(uuid.uuid4())}}
    model = validate_data("ticket.assigned", _ticket(changes=changes))
    assert model.model_dump()["watchers"] == []


def test_a_commented_event_needs_its_comment() -> None:
    with pytest.raises(ValidationError):
        validate_data("ticket.commented", _ticket())
    comment = {"id": str(uuid.uuid4()), "author_id": str(uuid.uuid4()), "body": "x", "mentions": []}
    validate_data("ticket.commented", _ticket(comment=comment))


def test_an_assignment_may_belong_to_a_bulk_change() -> None:
    changes = {"assignee_id": {"from": None, "to": str(uuid.uuid4())}}
    assert validate_data("ticket.assigned", _ticket(changes=changes)).model_dump()["bulk"] is None
    bulk = {"id": str(uuid.uuid4()), "size": 12}
    model = validate_data("ticket.assigned", _ticket(changes=changes, bulk=bulk))
    assert model.model_dump(mode="json")["bulk"] == bulk
    with pytest.raises(ValidationError):
        validate_data("ticket.assigned", _ticket(changes=changes, bulk={"id": "nope", "size": 1}))


def test_an_unblocked_event_names_its_blocker() -> None:
    with pytest.raises(ValidationError):
        validate_data("ticket.unblocked", _ticket())
    blocker = {"id": str(uuid.uuid4()), "key": "BUG-3", "project_id": str(uuid.uuid4())}
    model = validate_data("ticket.unblocked", _ticket(blocker=blocker))
    assert model.model_dump(mode="json")["blocker"] == blocker


NOW = datetime.now(UTC)
SESSION = uuid.uuid4()


def _revocation() -> dict[str, object]:
    return {
        "user_id": uuid.uuid4(),
        "session_ids": [SESSION],
        "revoked_at": NOW,
        "forget_after": NOW,
        "revoked_by": None,
    }


def _new(name: str, data: BaseModel) -> CloudEvent:
    return new_event(
        name,
        service="auth",
        subject=uuid.uuid4(),
        sequence=1,
        data=data,
        actor_id=None,
        correlation_id=None,
    )


def test_new_event_serialises_its_model_as_producers_always_wrote_it() -> None:
    event = _new("auth.session_revoked", AuthSessionRevoked(**_revocation(), reason="logout"))
    assert event.data["revoked_at"] == NOW.isoformat()  # `+00:00`, not `Z`
    assert event.data["session_ids"] == [str(SESSION)]
    assert event.data["reason"] == "logout"
    change = {"from": "developer", "to": "viewer"}
    member = ProjectMemberRoleChanged(
        project_id=uuid.uuid4(),
        project_key="BUG",
        user_id=uuid.uuid4(),
        role="viewer",
        changes={"role": change},
    )
    assert _new("project.member_role_changed", member).data["changes"] == {"role": change}


def test_new_event_refuses_data_of_another_event() -> None:
    data = AuthSessionRevoked(**_revocation(), reason="logout")
    with pytest.raises(TypeError, match=r"user\.deactivated is a UserDeactivated"):
        _new("user.deactivated", data)
    with pytest.raises(ValueError, match="no Bugtracker event is named"):
        _new("user.exploded", data)
