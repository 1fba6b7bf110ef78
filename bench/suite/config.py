"""Where the running system is and how the suite runs: read the way `make up` reads them.

Ports come from the environment, then the repository's `.env`, then the defaults (as in
`bugtracker_devstack.__main__.up`); the admin's credentials from `.data/secrets.env`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from bugtracker_devstack.postgres import Postgres
from bugtracker_devstack.stack import read_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
PROFILES_DIR = RESULTS_DIR / "profiles"
LUA_SCRIPT = BENCH_DIR / "lua" / "load.lua"

DEFAULT_PORTS = {
    "gateway": 8000,
    "auth": 8001,
    "projects": 8002,
    "tickets": 8003,
    "notifications": 8004,
    "postgres": 5432,
    "rabbitmq": 5672,
}
PORT_VARIABLES = {
    "postgres": "BUGTRACKER_PG_PORT",
    "rabbitmq": "BUGTRACKER_AMQP_PORT",
}


@dataclass(frozen=True)
class Environment:
    """The `make up` this suite measures."""

    ports: dict[str, int]
    admin_email: str
    admin_password: str
    data_dir: Path
    env_file: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, data_dir: Path) -> Environment:
        env_file = read_env_file(REPO_ROOT / ".env")
        merged = env_file | dict(os.environ)
        ports = {
            name: int(merged.get(PORT_VARIABLES.get(name, f"BUGTRACKER_{name.upper()}_PORT"), port))
            for name, port in DEFAULT_PORTS.items()
        }
        secrets_file = data_dir / "secrets.env"
        secrets = read_env_file(secrets_file)
        if "BUGTRACKER_ADMIN_PASSWORD" not in secrets:
            raise SystemExit(
                f"bench: no admin credentials in {secrets_file}.\n"
                "Start the system with `make up` in another terminal first (it writes them)."
            )
        return cls(
            ports=ports,
            admin_email=secrets.get("BUGTRACKER_ADMIN_EMAIL", "admin@bugtracker.local"),
            admin_password=secrets["BUGTRACKER_ADMIN_PASSWORD"],
            data_dir=data_dir,
            env_file=env_file,
        )

    def url(self, process: str) -> str:
        return f"http://127.0.0.1:{self.ports[process]}"

    def superuser_dsn(self, database: str = "bugtracker") -> str:
        """PostgreSQL's superuser over `make up`'s private unix socket (as `make seed`)."""
        postgres = Postgres(base=self.data_dir / "postgres", port=self.ports["postgres"])
        return postgres.superuser_dsn(database)


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    concurrency: tuple[int, ...]
    users: int
    tickets: int
    scale: bool
    scale_project: str
    scale_tickets: int
    scenarios: tuple[str, ...]
    label: str
    save: bool
    profile: str
    profile_format: str
    notify_rate: float
    notify_seconds: float
    settle_cpu_percent: float
    allow_rate_limit: bool
    list_scenarios: bool
    data_dir: Path
    argv: tuple[str, ...]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Load scenarios against the system of a running `make up` "
        "(see bench/README.md). Defaults come from BENCH_* environment variables.",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(_env("BENCH_SECONDS", "8")),
        help="measured seconds per run (BENCH_SECONDS, 8)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=float(_env("BENCH_WARMUP", "2")),
        help="unmeasured seconds before each run (BENCH_WARMUP, 2)",
    )
    parser.add_argument(
        "--concurrency",
        default=_env("BENCH_CONCURRENCY", "1,10,50"),
        help="comma-separated connection counts (BENCH_CONCURRENCY, 1,10,50)",
    )
    parser.add_argument("--users", type=int, default=4, help="bench users whose tokens rotate")
    parser.add_argument(
        "--tickets", type=int, default=10_000, help="tickets in the BENCH project (10,000)"
    )
    parser.add_argument(
        "--no-scale",
        dest="scale",
        action="store_false",
        default=_env("BENCH_SCALE", "1") not in ("0", "false", "no"),
        help="skip the 1M-ticket scenarios and their seeding (BENCH_SCALE=0)",
    )
    parser.add_argument(
        "--scale-project",
        default=_env("BENCH_SCALE_PROJECT", "SEED"),
        help="project key for the scale scenarios (BENCH_SCALE_PROJECT, SEED: `make seed`'s)",
    )
    parser.add_argument(
        "--scale-tickets",
        type=int,
        default=int(_env("BENCH_SCALE_TICKETS", "1000000")),
        help="tickets wanted in the scale project (BENCH_SCALE_TICKETS, 1,000,000)",
    )
    parser.add_argument(
        "--scenarios",
        default=_env("BENCH_SCENARIOS", ""),
        help="comma-separated names or globs, e.g. 'list*,get' (BENCH_SCENARIOS; default all)",
    )
    parser.add_argument(
        "--list-scenarios", action="store_true", help="print the scenarios and exit"
    )
    parser.add_argument(
        "--label",
        default=_env("BENCH_LABEL", ""),
        help="suffix of the results file, e.g. before / after (BENCH_LABEL)",
    )
    parser.add_argument(
        "--no-save", dest="save", action="store_false", help="print only, write no results file"
    )
    parser.add_argument(
        "--profile",
        default=_env("BENCH_PROFILE", ""),
        help="py-spy record this process (gateway, tickets, ... or a port) during each "
        "measured run; output in bench/results/profiles/",
    )
    parser.add_argument(
        "--profile-format",
        choices=("flamegraph", "speedscope"),
        default=_env("BENCH_PROFILE_FORMAT", "flamegraph"),
    )
    parser.add_argument(
        "--notify-rate", type=float, default=100.0, help="assignments per second (100)"
    )
    parser.add_argument(
        "--notify-seconds", type=float, default=10.0, help="seconds of assignments (10)"
    )
    parser.add_argument(
        "--settle-cpu",
        type=float,
        default=15.0,
        help="before each run, wait until the system's processes use less CPU %% than this",
    )
    parser.add_argument(
        "--allow-rate-limit",
        action="store_true",
        help="run even though the gateway's rate limit would refuse benchmark traffic",
    )
    parser.add_argument("--data", type=Path, default=REPO_ROOT / ".data")
    args = parser.parse_args(argv)
    concurrency = tuple(int(c) for c in _patterns(args.concurrency))
    if not concurrency or min(concurrency) < 1:
        parser.error("--concurrency needs positive numbers")
    if args.users < 2:  # noqa: PLR2004 (an assigner and at least one assignee)
        parser.error("--users needs at least 2")
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=concurrency,
        users=args.users,
        tickets=args.tickets,
        scale=args.scale,
        scale_project=args.scale_project,
        scale_tickets=args.scale_tickets,
        scenarios=_patterns(args.scenarios),
        label=args.label.strip(),
        save=args.save,
        profile=args.profile.strip(),
        profile_format=args.profile_format,
        notify_rate=args.notify_rate,
        notify_seconds=args.notify_seconds,
        settle_cpu_percent=args.settle_cpu,
        allow_rate_limit=args.allow_rate_limit,
        list_scenarios=args.list_scenarios,
        data_dir=args.data,
        argv=tuple(argv),
    )
