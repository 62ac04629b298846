"""ups.net.loop: uvloop when installed, asyncio when asked or when it is missing."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from ups.net.loop import loop_name, run


async def _which() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_env_forces_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCMUPS_LOOP", "asyncio")
    assert loop_name() == "asyncio"
    assert run(_which()).startswith("asyncio")


def test_default_uses_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DCMUPS_LOOP", raising=False)
    installed = importlib.util.find_spec("uvloop") is not None
    assert loop_name() == ("uvloop" if installed else "asyncio")
    assert run(_which()).startswith("uvloop" if installed else "asyncio")
