"""Each layer imports only the layers below it (DESIGN.md "Layers", STYLE.md habit 1).

From the bottom: ``errors``, ``pdu``, ``dimse``, ``net``, ``services`` (the UPS library),
``services.scp`` (the reference SCP, a product on top of the library) and ``cli`` (the
command line and its processes). The library never reaches into the SCP or the CLI,
and the SCP never into the CLI. ``ups/__init__.py`` sits outside the stack: it
re-exports the library's public API.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ups"
LAYERS = ["errors", "pdu", "dimse", "net", "services", "services.scp", "cli"]
IO_MODULES = {"asyncio", "socket", "ssl", "threading", "selectors", "time"}


def _layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None outside ``ups``'s layers."""
    parts = module.split(".")
    if parts[0] != "ups" or len(parts) == 1:
        return None
    if parts[1:3] == ["services", "scp"]:
        return "services.scp"
    return parts[1] if parts[1] in LAYERS else None


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


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


def test_the_layers_are_where_the_design_puts_them() -> None:
    assert _layer_of("ups.services.scu") == "services"
    assert _layer_of("ups.services.scp") == "services.scp"
    assert _layer_of("ups.services.scp.store") == "services.scp"
    assert _layer_of("ups.cli.listen") == "cli"
    assert _layer_of("ups") is None
    for folder in ("pdu", "dimse", "net", "services", "services/scp", "cli"):
        assert (PACKAGE / folder / "__init__.py").exists(), folder


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_or_io_imports(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = _layer_of(_module_of(path))
    if own is None:
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
