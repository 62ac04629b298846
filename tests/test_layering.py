"""Each layer imports only the layers below it (DESIGN.md "Layers", STYLE.md habit 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ups"
LAYERS = ["errors", "pdu", "dimse", "net", "services", "cli"]
IO_MODULES = {"asyncio", "socket", "ssl", "threading", "selectors", "time"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ups" or len(parts) == 1:
        return None
    return parts[1] if parts[1] in LAYERS else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_or_io_imports(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py") if rel.parts else ""
    if own not in LAYERS:
        return
    own_rank = LAYERS.index(own)
    for module in _imports(path):
        layer = _layer_of(module)
        if layer is not None:
            assert LAYERS.index(layer) <= own_rank, f"{rel} imports {module} (upward)"
        if own in ("pdu", "dimse"):
            assert module.split(".")[0] not in IO_MODULES, f"{rel} imports {module} (I/O)"
        if own == "pdu":
            assert module.split(".")[0] != "pydicom", f"{rel} imports pydicom"


def test_the_provider_core_is_sans_io() -> None:
    """DESIGN.md: the DIMSE provider core (dimse/provider*.py) takes bytes and ``now``; it
    imports no asyncio, socket, ssl, threading or time, whatever the rule above says."""
    core = sorted((PACKAGE / "dimse").glob("provider*.py"))
    assert {p.name for p in core} >= {"provider.py", "provider_events.py"}
    for path in core:
        for module in _imports(path):
            assert module.split(".")[0] not in IO_MODULES, f"{path.name} imports {module}"
