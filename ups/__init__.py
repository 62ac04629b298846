"""dcmups: an asyncio DICOM network stack and Unified Procedure Step toolkit.

The library in one import::

    import ups

    async with ups.connect("UPSSCP@host:11112", calling_aet="ME") as scu:
        created = await scu.create(dataset)

    async with ups.listen("ME@0.0.0.0:11113") as events:
        async for event in events:  # ups.UPSEvent
            ...

A failure status raises :class:`UPSFailure`; network problems raise
``ups.net.errors.NetError``; every error this package raises on purpose is a
:class:`DicomError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

IMPLEMENTATION_CLASS_UID = "2.25.7099378959768370569084112868570984455"
"""Implementation Class UID sent in every association (PS3.7 D.3.3.2)."""

IMPLEMENTATION_VERSION_NAME = "DCMUPS_010"
"""Implementation Version Name (PS3.7 D.3.3.2.2: at most 16 characters)."""

# The public API, imported on first use (PEP 562) so that the sans-I/O layers
# (``import ups.pdu``) load without asyncio, sockets or pydicom.
_EXPORTS: dict[str, str] = {
    "ScanLimits": "ups.dimse.scanner",
    "DicomError": "ups.errors",
    "AssociationConfig": "ups.net.config",
    "AddressError": "ups.services.errors",
    "ServiceError": "ups.services.errors",
    "UPSError": "ups.services.errors",
    "UPSFailure": "ups.services.errors",
    "EventType": "ups.services.events",
    "UPSEvent": "ups.services.events",
    "EventListener": "ups.services.listener",
    "listen": "ups.services.listener",
    "serve_events": "ups.services.listener",
    "SCUOptions": "ups.services.scu",
    "UPSClient": "ups.services.scu",
    "UPSResult": "ups.services.scu",
    "connect": "ups.services.scu",
    "ListenerSettings": "ups.services.settings",
    "NatsSink": "ups.services.sinks",
}

if TYPE_CHECKING:
    from ups.dimse.scanner import ScanLimits
    from ups.errors import DicomError
    from ups.net.config import AssociationConfig
    from ups.services.errors import AddressError, ServiceError, UPSError, UPSFailure
    from ups.services.events import EventType, UPSEvent
    from ups.services.listener import EventListener, listen, serve_events
    from ups.services.scu import SCUOptions, UPSClient, UPSResult, connect
    from ups.services.settings import ListenerSettings
    from ups.services.sinks import NatsSink


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ups' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "AddressError",
    "AssociationConfig",
    "DicomError",
    "EventListener",
    "EventType",
    "ListenerSettings",
    "NatsSink",
    "SCUOptions",
    "ScanLimits",
    "ServiceError",
    "UPSClient",
    "UPSError",
    "UPSEvent",
    "UPSFailure",
    "UPSResult",
    "__version__",
    "connect",
    "listen",
    "serve_events",
]
