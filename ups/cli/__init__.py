"""The ``dcmups`` command line and the processes it runs (listener daemon, SCP, bench, demo)."""

from __future__ import annotations

from ups.cli.main import main

__all__ = ["main"]
