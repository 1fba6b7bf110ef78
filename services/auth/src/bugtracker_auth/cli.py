"""`python -m bugtracker_auth.cli create-admin`: the first admin, from the environment."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys

from bugtracker_auth.bootstrap import build
from bugtracker_auth.settings import Settings


async def create_admin() -> str:
    email = os.environ.get("BUGTRACKER_ADMIN_EMAIL", "admin@bugtracker.local")
    password = os.environ.get("BUGTRACKER_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
    runtime, _, use_cases = build(Settings())
    try:
        user, created = await use_cases.ensure_admin(email=email, password=password)
    finally:
        await runtime.close()
    if not created:
        return f"admin {user.email} exists already"
    shown = password if "BUGTRACKER_ADMIN_PASSWORD" not in os.environ else "(from environment)"
    return f"created admin {user.email} with password {shown}"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bugtracker_auth.cli")
    parser.add_argument("command", choices=["create-admin"])
    args = parser.parse_args()
    if args.command == "create-admin":
        sys.stdout.write(asyncio.run(create_admin()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
