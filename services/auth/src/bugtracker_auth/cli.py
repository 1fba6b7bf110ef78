"""`uv run bugtracker-auth create-admin | rotate-keys`: operator commands of the auth service.

create-admin: the first admin, from BUGTRACKER_ADMIN_EMAIL / BUGTRACKER_ADMIN_PASSWORD
(or --email / --password), the password generated and printed when unset; idempotent.
rotate-keys: a new Ed25519 key in BUGTRACKER_AUTH_KEYS_DIR that signs from now on; the
JWKS keeps publishing the previous key, so tokens already issued keep verifying. Running
auth processes pick the new key up without a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys

from bugtracker_auth.settings import Settings


async def create_admin(email: str | None = None, password: str | None = None) -> str:
    from bugtracker_auth.bootstrap import build

    email = email or os.environ.get("BUGTRACKER_ADMIN_EMAIL", "admin@bugtracker.local")
    given = password or os.environ.get("BUGTRACKER_ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(18)
    runtime, _, use_cases, _ = build(Settings())
    try:
        user, created = await use_cases.ensure_admin(email=email, password=password)
    finally:
        await runtime.close()
    if not created:
        return f"admin {user.email} exists already"
    shown = "(as given)" if given else password
    return f"created admin {user.email} with password {shown}"


def rotate_keys(settings: Settings | None = None) -> str:
    from bugtracker_auth.infrastructure.keys import KeyStore

    settings = settings or Settings()
    keys = KeyStore(settings.keys_dir)
    keys.load()
    previous = keys.current.kid
    new = keys.generate()
    keys.load(create_if_missing=False)
    published = [key["kid"] for key in keys.jwks()["keys"]]
    return f"new signing key {new.kid} (previous {previous}); JWKS publishes {published}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bugtracker-auth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("create-admin", help="create the first admin (idempotent)")
    admin.add_argument("--email")
    admin.add_argument("--password")
    commands.add_parser("rotate-keys", help="add a new signing key that signs from now on")
    args = parser.parse_args(argv)
    if args.command == "create-admin":
        sys.stdout.write(asyncio.run(create_admin(args.email, args.password)) + "\n")
    elif args.command == "rotate-keys":
        sys.stdout.write(rotate_keys() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
