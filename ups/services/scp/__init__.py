"""The reference UPS SCP (PS3.4 Annex CC): service, settings, the workitem state table,
matching, the store and event delivery. ``UPSSCP(options)`` runs one."""

from __future__ import annotations

from ups.services.scp.config import RemoteAE, SCPOptions
from ups.services.scp.service import UPSSCP

__all__ = ["UPSSCP", "RemoteAE", "SCPOptions"]
