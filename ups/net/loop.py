"""Running the event loop: uvloop when it is installed, asyncio's own otherwise.

DESIGN.md: uvloop is used when installed (the ``speed`` extra), never required. Setting
``DCMUPS_LOOP=asyncio`` forces the standard loop (for comparisons and debugging).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """ "uvloop" or "asyncio": the loop ``run`` will use."""
    if os.environ.get("DCMUPS_LOOP", "").lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the fastest loop available."""
    if loop_name() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)
