"""The session stays sans-I/O: no module under theta_net/session imports asyncio, sockets,
aioquic or aiortc (asyncpg's test__sourcecode.py does this for its own rules); and the core
never imports theta_net."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FORBIDDEN_IN_SESSION = {"asyncio", "socket", "selectors", "ssl", "aioquic", "aiortc", "aiohttp",
                        "threading"}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_session_imports_no_io() -> None:
    files = sorted((SRC / "theta_net" / "session").glob("*.py"))
    assert len(files) >= 6
    for path in files:
        bad = imported(path) & FORBIDDEN_IN_SESSION
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_never_imports_theta_net() -> None:
    for path in sorted((SRC / "theta_ecs").rglob("*.py")):
        assert "theta_net" not in imported(path), path
