"""The import-linter contracts (pyproject.toml) fail on the imports they exist to stop:
an application module importing a shared adapter, an infrastructure module importing the
API layer, a gateway leaf importing a request handler. Each is planted in a throw-away
module, `lint-imports` runs, and the planted modules are removed again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANTED = {
    ROOT / "services/tickets/src/bugtracker_tickets/application/_planted_adapter.py": (
        "import bugtracker_shared.db\n",
        "Domain and application use shared contracts, never shared adapters BROKEN",
    ),
    ROOT / "services/tickets/src/bugtracker_tickets/infrastructure/_planted_api.py": (
        "import bugtracker_tickets.api.routes\n",
        "Infrastructure never imports the API layer BROKEN",
    ),
}


def _lint() -> str:
    tool = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(  # noqa: S603 (our own tool, fixed arguments)
        [str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


def test_the_contracts_hold_today() -> None:
    out = _lint()
    assert "BROKEN" not in out, out
    assert "Contracts: 7 kept, 0 broken." in out, out


def test_the_contracts_fail_on_the_imports_they_forbid() -> None:
    planted = PLANTED
    # A leaf of the gateway's layers importing a request handler.
    routing = ROOT / "gateway/src/bugtracker_gateway/routing.py"
    original = routing.read_text()
    try:
        for path, (source, _) in planted.items():
            path.write_text(source)
        routing.write_text(original + "\nimport bugtracker_gateway.proxy  # planted\n")
        out = _lint()
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
        routing.write_text(original)
    for _, expected in planted.values():
        assert expected in out, out
    assert "Gateway layers BROKEN" in out, out
