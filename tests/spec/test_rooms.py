"""The house's rooms (../shared/design.md): what each subpackage must never import, read from the source (no import
runs). A room that reached into another (envs importing the env-id registration, say) would tie the sim to the CLI's
face or the bus to the recorder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
#: folder -> the twinarm modules it must never import (prefixes), from design.md's table.
NEVER = {
    "envs": ("twinarm.real", "twinarm.agents", "twinarm.datasets_io", "twinarm.registration", "twinarm.cli"),
    "real": ("twinarm.agents", "twinarm.datasets_io", "twinarm.cli"),
    "datasets_io": ("twinarm.envs", "twinarm.real", "twinarm.agents", "twinarm.cli"),
    "agents": ("twinarm.real", "twinarm.cli"),
    "agents/act": ("twinarm.envs",),
    "agents/diffusion": ("twinarm.envs",),
    "agents/tdmpc": ("twinarm.envs",),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("room", sorted(NEVER))
def test_a_room_imports_none_of_what_it_must_not(room: str) -> None:
    files = [p for p in (ROOT / room).rglob("*.py") if "virtual" not in p.parts]  # the virtual bus may drive envs/
    assert files
    bad = sorted(f"{p.relative_to(ROOT)} imports {name}" for p in files for name in imported(p)
                 if name.startswith(NEVER[room]))  # fmt: skip
    assert not bad, bad
