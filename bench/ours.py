"""Our side of every scenario, and the one place that decides whether it can run yet.

Every role is written against the public ``ups`` API. ``unavailable`` still probes the
names each adapter needs (``REQUIRED``), so a broken import shows as an ``n/a`` with its
reason rather than a crashed run.

Adapter contracts (all run inside a bench worker process, on the worker's event loop):

``event_listener``  ``async (counter, window, *, port=0, reuse_port=False) -> (port, stop)``
                    — listen on 127.0.0.1:``port`` (0: a free one) for N-EVENT-REPORT (UPS
                    Event SOP Class, Implicit VR LE, async ops window ``window``), answer
                    Success, call ``next(counter)`` per event; ``stop`` is an
                    ``async () -> None``. ``reuse_port``: SO_REUSEPORT, so that several
                    workers share one port (scenario 3, two listener processes).
``event_iterator``  the same contract as ``event_listener``, through the library consumer
                    ``listen()`` iterated in a task (``async for event in events``).
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
    "event_iterator",
    "event_sender",
    "echo_nget_scp",
    "echo_scu",
    "nget_scu",
    "open_release",
    "codec",
)

_LISTENER = ("ups.services.listener:serve_events",)
_SERVER = ("ups.net.server:serve",)
_REQUESTOR = ("ups.net.requestor:connect", "ups.net.association:Association")

# role -> "module:attribute" names its adapter (in ``bench.ourstack``) needs.
REQUIRED: dict[str, tuple[str, ...]] = {
    "event_listener": _LISTENER,
    "event_iterator": ("ups.services.listener:listen",),
    "event_sender": (*_REQUESTOR, "ups.dimse.messages:NEventReportRQ"),
    "echo_nget_scp": _SERVER,
    "echo_scu": _REQUESTOR,
    "nget_scu": (*_REQUESTOR, "ups.dimse.messages:NGetRQ"),
    "open_release": _REQUESTOR,
    "codec": (
        "ups.dimse.messages:encode_command",
        "ups.dimse.fragment:encode_pdata",
        "ups.dimse.fragment:Reassembler",
        "ups.pdu.framer:Framer",
    ),
}

ADAPTER_MODULE = "bench.ourstack"
ADAPTERS: dict[str, Callable[..., Any]] = {}
"""role -> adapter, filled from ``bench.ourstack`` on first use (so pynetdicom-only workers
never import ``ups``)."""


def _load() -> str | None:
    """Import the adapters once; None, or why they cannot be imported."""
    if ADAPTERS:
        return None
    try:
        module = importlib.import_module(ADAPTER_MODULE)
    except ImportError as exc:
        return f"ours not available: {ADAPTER_MODULE} does not import: {exc}"
    for role in ROLES:
        ADAPTERS[role] = getattr(module, role)
    return None


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
    reason = _load()
    if reason is not None:
        return reason
    if role not in ADAPTERS:
        return f"ours not available yet: adapter '{role}' not written in {ADAPTER_MODULE}"
    return None


def adapter(role: str) -> Callable[..., Any]:
    reason = unavailable(role)
    if reason is not None:
        raise OursUnavailable(reason)
    return ADAPTERS[role]


class OursUnavailable(Exception):
    """Our stack cannot play this role yet; the scenario reports n/a with this reason."""
