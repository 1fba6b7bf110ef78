"""CONTRIBUTING.md's "Layout" section against the tree, both ways: every path it names
exists (top-level entries, each service's files, and the modules it lists per layer, for
every service or for the one named before them), and every service and every layer
directory of a service package is named in it. Adding, renaming or moving a service, a
layer or a listed module without updating the section fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "src").is_dir())
# The description column of the block: a name at this indentation or deeper continues the
# entry above it.
DESCRIPTION_COLUMN = 27


def _layout_block() -> list[str]:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert block, "the Layout section has no code block"
    return block.group(1).splitlines()


def _is_path(token: str) -> bool:
    return bool(re.fullmatch(r"[\w.<>/-]+", token)) and (
        "/" in token or "." in token or token.endswith("file")
    )


def _leading_paths(line: str) -> list[str]:
    """The names a line starts with, before its description."""
    paths = []
    for token in line.split():
        if not _is_path(token):
            break
        paths.append(token)
    return paths


def _expand(path: str) -> list[str]:
    return [path.replace("<name>", name) for name in SERVICES] if "<name>" in path else [path]


def _entries(lines: list[str], indent: int) -> list[tuple[str, str]]:
    """(head, text) of each entry at `indent`, continuation lines joined to its text."""
    entries: list[tuple[str, str]] = []
    for line in lines:
        depth = len(line) - len(line.lstrip())
        if depth == indent and line.strip():
            entries.append((line.strip(), line.strip()))
        elif depth >= DESCRIPTION_COLUMN and entries:
            head, text = entries[-1]
            entries[-1] = (head, f"{text} {line.strip()}")
    return entries


def _service_lines(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("services/<name>/"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace())
    return lines[start + 1 : end]


def _package_files(lines: list[str]) -> dict[str, set[str]]:
    """Per service, the files the section lists inside its package (relative to it)."""
    wanted: dict[str, set[str]] = {name: set() for name in SERVICES}
    for head, text in _entries(lines, 8):
        first = head.split()[0]
        if first.endswith(":"):  # "auth only:  cli.py ..."
            owners, layer, words = [first.split()[0]], "", text.split()[2:]
        elif first.endswith("/"):  # "api/  routes.py, ...; tickets also markdown.py"
            owners, layer, words = SERVICES, first, text.split()[1:]
        else:  # "main.py  create_app(): ..."
            owners, layer, words = SERVICES, "", [first]
        for word in words:
            token = word.strip("(),;:")
            if token in SERVICES:
                owners = [token]
            elif re.fullmatch(r"[\w/-]+\.(py|txt)", token):
                for owner in owners:
                    wanted[owner].add(layer + token)
    return wanted


def test_every_top_level_path_of_the_section_exists() -> None:
    named = [p for line in _layout_block() if line[:1].strip() for p in _leading_paths(line)]
    assert "services/<name>/" in named
    assert len(named) > 20
    missing = [p for path in named for p in _expand(path) if not (ROOT / p).exists()]
    assert not missing, f"CONTRIBUTING.md's Layout names paths that do not exist: {missing}"


def test_every_service_file_of_the_section_exists() -> None:
    lines = _service_lines(_layout_block())
    shallow = [
        p
        for line in lines
        if line.startswith("    ") and not line.startswith("     ")
        for p in _leading_paths(line)
    ]
    assert "src/bugtracker_<name>/" in shallow
    missing = [
        f"services/{name}/{path.replace('<name>', name)}"
        for name in SERVICES
        for path in shallow
        if not (ROOT / "services" / name / path.replace("<name>", name)).exists()
    ]
    assert not missing, f"CONTRIBUTING.md's Layout names files that do not exist: {missing}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_module_the_section_lists_exists(service: str) -> None:
    package = ROOT / "services" / service / "src" / f"bugtracker_{service}"
    wanted = _package_files(_service_lines(_layout_block()))[service]
    assert {"main.py", "settings.py", "bootstrap.py", "api/routes.py"} <= wanted
    missing = sorted(path for path in wanted if not (package / path).is_file())
    assert not missing, f"CONTRIBUTING.md's Layout lists {missing} in {package.name}, absent"


def test_every_service_and_layer_is_in_the_section() -> None:
    lines = _layout_block()
    services_line = next(line for line in lines if line.startswith("services/<name>/"))
    named_services = {word.strip(",") for word in services_line.split()[1:]}
    assert set(SERVICES) <= named_services, "a service is missing from the Layout section"
    layers = {head.split()[0] for head, _ in _entries(_service_lines(lines), 8)}
    found = {
        f"{directory.name}/"
        for name in SERVICES
        for directory in (ROOT / "services" / name / "src" / f"bugtracker_{name}").iterdir()
        if (directory / "__init__.py").is_file()
    }
    assert {"api/", "application/", "domain/", "infrastructure/"} <= found
    assert found <= layers, f"layers missing from CONTRIBUTING.md's Layout: {found - layers}"
