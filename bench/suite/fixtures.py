"""The data the scenarios need, made through the gateway with real tokens (idempotent).

- users `bench-<i>@example.com`, registered once; their passwords are derived from the
  admin's (kept in .data/secrets.env), so every later run can log them in again;
- project BENCH (the users are developers) with `--tickets` tickets: the read scenarios,
  get, assign and the notification latency work on it; it only grows when it has fewer
  tickets than wanted (filled with COPY by devstack's seed code, as `make seed` does);
- project BENCHW (the users are developers): the create scenarios write here, so BENCH
  keeps its size however often the suite runs;
- the scale project (`make seed`'s SEED by default; the users are viewers), filled up to
  `--scale-tickets` the same way, only when a scale scenario runs;
- a few tickets with a word the seed vocabulary lacks (RARE_WORD) in BENCH and in the
  scale project, for a selective full-text search;
- at least a page of tickets assigned to each user, for `GET /tickets?assignee=me`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from bugtracker_devstack.seed import WORDS, seed

from suite.api import Api, ApiError
from suite.config import Environment, Options

BENCH_PROJECT = "BENCH"
WRITE_PROJECT = "BENCHW"
COMMON_WORD = "crash"  # one of the seed's 45 words: in about half of the seeded tickets
RARE_WORD = "segfault"  # in no seeded ticket; RARE_TICKETS tickets are filed with it
RARE_TICKETS = 5
ASSIGN_POOL = 2000  # BENCH-1..2000: the wrk assign scenario
NOTIFY_POOL_START = ASSIGN_POOL + 1  # then one ticket per assignment of the latency driver
MINE_START = 5001  # BENCH-5001...: tickets assigned to each user for `assignee=me`
MINE_PER_USER = 25
TOKEN_MAX_AGE_SECONDS = 540.0  # access tokens live 10 minutes
NOT_FOUND = 404

if COMMON_WORD not in WORDS or RARE_WORD in WORDS:
    raise RuntimeError("bench/suite/fixtures.py: the search words no longer fit seed.WORDS")


@dataclass
class User:
    email: str
    password: str
    id: str = ""
    token: str = ""
    logged_in: float = 0.0


@dataclass(frozen=True)
class Project:
    key: str
    id: str
    tickets: int


@dataclass
class Fixture:
    admin: User
    users: list[User]
    bench: Project
    writes: Project
    scale: Project | None = None

    def tokens(self) -> list[str]:
        return [user.token for user in self.users]

    async def fresh_tokens(self, api: Api, needed_seconds: float) -> None:
        """Log everyone in again when a token could expire within the next run."""
        for user in (self.admin, *self.users):
            if time.monotonic() - user.logged_in + needed_seconds > TOKEN_MAX_AGE_SECONDS:
                await _login(api, user)


def user_password(admin_password: str, email: str) -> str:
    digest = hashlib.sha256(f"{admin_password}\n{email}".encode()).hexdigest()
    return f"bench {digest[:40]}"


async def _login(api: Api, user: User) -> None:
    user.token = await api.login(user.email, user.password)
    user.logged_in = time.monotonic()


async def _ensure_user(api: Api, admin: User, email: str, password: str) -> User:
    user = User(email=email, password=password)
    found = await api.call("GET", f"/api/v1/users?q={email}&limit=5", token=admin.token)
    match = [item for item in found["items"] if item["email"].lower() == email]
    if match:
        user.id = str(match[0]["id"])
    else:
        created = await api.call(
            "POST",
            "/api/v1/auth/register",
            json={"email": email, "password": password, "display_name": email.partition("@")[0]},
            expect=(201,),
        )
        user.id = str(created["id"])
        print(f"  registered {email}")
    try:
        await _login(api, user)
    except ApiError as exc:
        raise SystemExit(
            f"bench: cannot log in {email} ({exc}). Its password is derived from the admin's; "
            "if that changed, deactivate the bench users or start from a fresh .data/."
        ) from exc
    return user


async def _ensure_project(
    api: Api, admin: User, key: str, name: str, members: list[User], role: str
) -> Project:
    try:
        project: dict[str, Any] = await api.call(
            "GET", f"/api/v1/projects/{key}", token=admin.token
        )
    except ApiError as exc:
        if exc.status != NOT_FOUND:
            raise
        project = await api.call(
            "POST",
            "/api/v1/projects",
            token=admin.token,
            json={"key": key, "name": name},
            expect=(201,),
        )
        print(f"  created project {key}")
    project_id = str(project["id"])
    for user in members:
        try:
            await api.call(
                "GET", f"/api/v1/projects/{project_id}/members/{user.id}", token=admin.token
            )
        except ApiError as exc:
            if exc.status != NOT_FOUND:
                raise
            await api.call(
                "POST",
                f"/api/v1/projects/{project_id}/members",
                token=admin.token,
                json={"user_id": user.id, "role": role},
                expect=(201,),
            )
    tickets = await api.total(f"/api/v1/projects/{project_id}/tickets", admin.token)
    return Project(key=key, id=project_id, tickets=tickets)


async def _fill(api: Api, env: Environment, admin: User, project: Project, wanted: int) -> Project:
    """Top the project up to `wanted` tickets with devstack's COPY seeding."""
    missing = wanted - project.tickets
    if missing <= 0:
        return project
    print(f"  seeding {missing:,} tickets into {project.key} (devstack seed, COPY)")
    await seed(env.superuser_dsn(), key=project.key, tickets=missing, owner_email=env.admin_email)
    tickets = await api.total(f"/api/v1/projects/{project.id}/tickets", admin.token)
    return Project(key=project.key, id=project.id, tickets=tickets)


async def _ensure_rare(api: Api, admin: User, project: Project) -> None:
    path = f"/api/v1/projects/{project.id}/tickets"
    have = await api.total(f"{path}?q={RARE_WORD}", admin.token)
    for n in range(have, RARE_TICKETS):
        await api.call(
            "POST",
            path,
            token=admin.token,
            json={
                "title": f"{RARE_WORD.capitalize()} in export after login ({n + 1})",
                "description": f"The desktop app hits a {RARE_WORD} when saving a report.",
                "priority": "high",
            },
            expect=(201,),
        )


async def _ensure_assigned(api: Api, admin: User, users: list[User], project: Project) -> None:
    for index, user in enumerate(users):
        have = await api.total("/api/v1/tickets?assignee=me", user.token)
        if have >= MINE_PER_USER:
            continue
        first = MINE_START + index * MINE_PER_USER
        for number in range(first, first + MINE_PER_USER):
            await api.call(
                "PUT",
                f"/api/v1/tickets/{project.key}-{number}/assignee",
                token=admin.token,
                json={"assignee_id": user.id},
            )


def check_sizes(options: Options) -> None:
    needed = MINE_START + MINE_PER_USER * options.users
    notify = int(options.notify_rate * options.notify_seconds)
    if options.tickets < needed:
        raise SystemExit(f"bench: --tickets must be at least {needed:,}")
    if NOTIFY_POOL_START + notify > MINE_START:
        raise SystemExit(
            f"bench: at most {MINE_START - NOTIFY_POOL_START} assignments for the "
            "notification latency (--notify-rate x --notify-seconds)"
        )


async def prepare(api: Api, env: Environment, options: Options, *, scale: bool) -> Fixture:
    check_sizes(options)
    admin = User(email=env.admin_email, password=env.admin_password)
    await _login(api, admin)
    admin.id = str((await api.call("GET", "/api/v1/users/me", token=admin.token))["id"])
    users = [
        await _ensure_user(
            api,
            admin,
            email := f"bench-{i}@example.com",
            user_password(env.admin_password, email),
        )
        for i in range(1, options.users + 1)
    ]
    bench = await _ensure_project(api, admin, BENCH_PROJECT, "Benchmark: reads", users, "developer")
    bench = await _fill(api, env, admin, bench, options.tickets)
    await _ensure_rare(api, admin, bench)
    writes = await _ensure_project(
        api, admin, WRITE_PROJECT, "Benchmark: creates", users, "developer"
    )
    fixture = Fixture(admin=admin, users=users, bench=bench, writes=writes)
    if scale:
        big = await _ensure_project(
            api, admin, options.scale_project, "Benchmark: scale", users, "viewer"
        )
        big = await _fill(api, env, admin, big, options.scale_tickets)
        await _ensure_rare(api, admin, big)
        fixture.scale = big
    await _ensure_assigned(api, admin, users, bench)
    return fixture
