"""A client generated from the gateway's OpenAPI by a tool no one here wrote
(openapi-python-client), used for one story: register, log in, create a project, add a
member, file a ticket, assign it, and an error case it must parse as a Problem."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "ember-orchard-violin-31-quay"
PACKAGE = "bugtracker_client"


@pytest.fixture(scope="module")
def client_package(system: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated package, imported (generation must not warn)."""
    where = tmp_path_factory.mktemp("generated")
    spec = where / "openapi.json"
    spec.write_bytes(httpx.get(f"{system.gateway_url}/openapi.json", timeout=10).content)
    tools = Path(sys.executable).parent  # ruff, for the generator's own formatting
    done = subprocess.run(  # noqa: S603 (a tool of the dev environment, fixed arguments)
        [
            str(tools / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
        ],
        env=os.environ | {"PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_a_generated_client_tells_a_whole_story(system: Any, client_package: Any) -> None:
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    register = importlib.import_module(f"{PACKAGE}.api.auth.register_api_v1_auth_register_post")
    login = importlib.import_module(f"{PACKAGE}.api.auth.login_api_v1_auth_login_post")
    assert api is not None
    anonymous = client_package.Client(base_url=system.gateway_url, timeout=10)

    def person(name: str) -> tuple[Any, Any]:
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        user = register.sync(
            client=anonymous,
            body=models.RegisterRequest(email=email, password=PASSWORD, display_name=name),
        )
        assert isinstance(user, models.UserResponse), user
        tokens = login.sync(
            client=anonymous, body=models.LoginRequest(email=email, password=PASSWORD)
        )
        assert isinstance(tokens, models.TokenResponse), tokens
        return user, client_package.AuthenticatedClient(
            base_url=system.gateway_url, token=tokens.access_token, timeout=10
        )

    _, owner = person("olive")
    dev, dev_client = person("dario")
    key = "G" + uuid.uuid4().hex[:6].upper()
    projects = f"{PACKAGE}.api.projects"
    tickets = f"{PACKAGE}.api.tickets"
    created = importlib.import_module(f"{projects}.create_project_api_v1_projects_post").sync(
        client=owner, body=models.CreateProjectRequest(key=key, name="Generated")
    )
    assert isinstance(created, models.ProjectResponse), created
    added = importlib.import_module(
        f"{projects}.add_member_api_v1_projects_project_ref_members_post"
    ).sync(
        key,
        client=owner,
        body=models.AddMemberRequest(user_id=dev.id, role=models.ProjectRole.DEVELOPER),
    )
    assert isinstance(added, models.MemberResponse), added

    ticket = importlib.import_module(
        f"{tickets}.create_ticket_api_v1_projects_project_ref_tickets_post"
    ).sync(key, client=owner, body=models.CreateTicketRequest(title="Generated clients work"))
    assert isinstance(ticket, models.TicketResponse), ticket
    assert ticket.key == f"{key}-1"
    assigned = importlib.import_module(
        f"{tickets}.assign_ticket_api_v1_tickets_ticket_ref_assignee_put"
    ).sync(ticket.key, client=owner, body=models.AssignRequest(assignee_id=dev.id))
    assert isinstance(assigned, models.TicketResponse), assigned
    get_ticket = importlib.import_module(f"{tickets}.get_ticket_api_v1_tickets_ticket_ref_get")
    seen = get_ticket.sync(ticket.key, client=dev_client)
    assert isinstance(seen, models.TicketResponse), seen
    assert seen.assignee_id == dev.id

    # An error is a Problem the client parses, with its status and code.
    missing = get_ticket.sync_detailed(f"{key}-999", client=dev_client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Problem), missing.content
    assert missing.parsed.status == 404
    assert missing.parsed.code
