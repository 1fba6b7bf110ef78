"""The import-linter contracts (pyproject.toml) fail on the imports they exist to stop:
an application module importing a shared adapter, an infrastructure module importing the
API layer, runtime code importing the test kit, a gateway leaf importing a request
handler. Each is planted in a copy of the sources (never in the working tree), and
`lint-imports` runs over the copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    "shared/src",
    "gateway/src",
    "services/auth/src",
    "services/projects/src",
    "services/tickets/src",
    "services/notifications/src",
    "services/webhooks/src",
    "testkit/src",
]
PLANTED = {
    "services/tickets/src/bugtracker_tickets/application/planted_adapter.py": (
        "import bugtracker_shared.db\n",
        "Domain and application use shared contracts, never shared adapters BROKEN",
    ),
    "services/tickets/src/bugtracker_tickets/infrastructure/planted_api.py": (
        "import bugtracker_tickets.api.routes\n",
        "Infrastructure never imports the API layer BROKEN",
    ),
    "shared/src/bugtracker_shared/planted_testkit.py": (
        "import bugtracker_testkit\n",
        "No runtime package imports the test kit BROKEN",
    ),
}


def _lint(root: Path) -> str:
    """`lint-imports` over the sources under `root` (found first on the path)."""
    tool = Path(sys.executable).parent / "lint-imports"
    path = os.pathsep.join(str(root / source) for source in SOURCES)
    done = subprocess.run(  # noqa: S603 (our own tool, fixed arguments)
        [str(tool), "--no-cache"],
        cwd=root,
        env=os.environ | {"PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def _copy(tmp_path: Path) -> Path:
    for source in SOURCES:
        shutil.copytree(ROOT / source, tmp_path / source)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_hold_on_the_sources(tmp_path: Path) -> None:
    out = _lint(_copy(tmp_path))
    assert "BROKEN" not in out, out
    assert "Contracts: 8 kept, 0 broken." in out, out


def test_the_contracts_fail_on_the_imports_they_forbid(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    for name, (source, _) in PLANTED.items():
        (root / name).write_text(source)
    # A leaf of the gateway's layers importing a request handler.
    routing = root / "gateway/src/bugtracker_gateway/routing.py"
    routing.write_text(routing.read_text() + "\nimport bugtracker_gateway.proxy\n")
    out = _lint(root)
    for _, expected in PLANTED.values():
        assert expected in out, out
    assert "Gateway layers BROKEN" in out, out
