"""Our side of every scenario, and the one place that decides whether it can run yet.

While ``ups.*`` is being written, a scenario's "ours" column reports ``n/a`` with the reason
given by :func:`unavailable`. To switch a role on: write its adapter below against the real
API, register it in ``ADAPTERS`` and list the names it needs in ``REQUIRED``. When every
role is on, delete ``REQUIRED`` and ``unavailable``'s import probing.

Adapter contracts (all run inside a bench worker process, on the worker's event loop):

``event_listener``  ``async (counter, window) -> (port, stop)`` — listen on 127.0.0.1:0 for
                    N-EVENT-REPORT (UPS Event SOP Class, Implicit VR LE, async ops window
                    ``window``), answer Success, call ``next(counter)`` per event; ``stop`` is
                    an ``async () -> None``.
``event_sender``    ``async (port, total, warmup, window) -> Result`` — one association,
                    UPS State Report N-EVENT-REPORTs (``bench.rawpdu.state_report_dataset``),
                    ``window`` outstanding; ``warmup`` untimed first.
``echo_nget_scp``   ``async (counter) -> (port, stop)`` — Verification SCP and UPS Pull N-GET
                    SCP returning a small workitem.
``echo_scu``, ``nget_scu``, ``open_release``  ``async (port, total, warmup) -> Result``.
``codec``           ``(iterations) -> {"encode_us", "decode_us", "roundtrip_us", "bytes"}`` —
                    one event P-DATA-TF (command + State Report data set), sans-I/O.

``Result`` is ``{"requests", "elapsed_s", "latencies_ns", "bad_status"}`` as in
``bench.rawclient.run_requests``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

ROLES = (
    "event_listener",
    "event_sender",
    "echo_nget_scp",
    "echo_scu",
    "nget_scu",
    "open_release",
    "codec",
)

# role -> "module:attribute" names the adapter will need (what exists in ups.* today;
# correct them when the adapters are written).
REQUIRED: dict[str, tuple[str, ...]] = {
    "event_listener": ("ups.net.server:serve",),
    "event_sender": ("ups.services.loadgen:run",),
    "echo_nget_scp": ("ups.net.server:serve",),
    "echo_scu": ("ups.services.loadgen:run",),
    "nget_scu": ("ups.services.loadgen:run",),
    "open_release": ("ups.net.requestor:connect",),
    "codec": ("ups.dimse.messages:NEventReportRQ",),
}

ADAPTERS: dict[str, Callable[..., Any]] = {}
"""role -> adapter; fill in as the stack's API becomes available."""


def unavailable(role: str) -> str | None:
    """None when our ``role`` can be measured, else a one-line reason for the n/a."""
    if role not in ROLES:
        raise KeyError(role)
    for target in REQUIRED.get(role, ()):
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
            getattr(module, attr)
        except (ImportError, AttributeError):
            return f"ours not available yet: {target} missing"
    if role not in ADAPTERS:
        return f"ours not available yet: adapter '{role}' not written in bench/ours.py"
    return None


def adapter(role: str) -> Callable[..., Any]:
    reason = unavailable(role)
    if reason is not None:
        raise OursUnavailable(reason)
    return ADAPTERS[role]


class OursUnavailable(Exception):
    """Our stack cannot play this role yet; the scenario reports n/a with this reason."""
