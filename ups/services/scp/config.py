"""Settings of the reference UPS SCP: its own address, its store, and the AEs it reports to.

A UPS SCP delivers N-EVENT-REPORTs by opening associations to each subscriber
(PS3.4 CC.2.4.3); a subscription only names the Receiving AE Title (0074,1234),
so the SCP needs a table from AE Title to network address.  It comes from
``--ae AET=host:port`` (repeatable) and/or a small file:

* JSON: ``{"aes": {"AET": "host:port", ...}}`` (or the mapping alone);
* INI: a section ``[aes]`` with lines ``AET = host:port``.

A subscription for a Receiving AE that is not in the table is refused with
C308 "Receiving AE-TITLE is Unknown to this SCP" (PS3.4 Table CC.2.3-3).
Addresses and AE titles follow :mod:`ups.services.address`; who may associate
(calling AE titles, users) is :mod:`ups.services.access`.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ups.dimse.datasets import TRANSFER_SYNTAXES
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits
from ups.net.config import AssociationConfig
from ups.pdu.negotiation import IdentityVerifier
from ups.services.address import check_ae_title, parse_host_port
from ups.services.errors import ConfigError
from ups.services.settings import DEFAULT_WINDOW
from ups.services.uids import DEFAULT_TRANSFER_SYNTAXES

__all__ = [
    "DEFAULT_RETAIN",
    "RemoteAE",
    "SCPOptions",
    "ae_table",
    "load_ae_file",
    "parse_ae",
]


DEFAULT_RETAIN = 3600.0
"""One hour: a performer's retry, a late N-GET and the day's C-FIND all fit in it."""


@dataclass(frozen=True, slots=True)
class RemoteAE:
    """Where one subscriber listens for N-EVENT-REPORTs."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class SCPOptions:
    """Everything the SCP needs to run; the CLI and the demo build one.

    Times are seconds.  ``event_idle`` is how long an outbound event
    association stays open after its last report; ``retry_initial`` and
    ``retry_max`` bound the exponential back-off for a subscriber that is down.
    """

    ae_title: str = "DCMUPSSCP"
    host: str = "127.0.0.1"
    port: int = 11112
    db: str | Path = "dcmups.db"
    remote_aes: Mapping[str, RemoteAE] = field(default_factory=lambda: MappingProxyType({}))
    config: AssociationConfig = field(default_factory=AssociationConfig)
    transfer_syntaxes: tuple[str, ...] = TRANSFER_SYNTAXES
    event_transfer_syntaxes: tuple[str, ...] = DEFAULT_TRANSFER_SYNTAXES
    any_called_ae: bool = False
    max_ops_performed: int = DEFAULT_WINDOW
    worklist_label: str = ""
    event_idle: float = 2.0
    retry_initial: float = 1.0
    retry_max: float = 60.0
    announce_status: bool = True
    """Send SCP Status Change (RESTARTED on start, GOING DOWN on stop), CC.2.4.3."""
    shutdown_flush: float = 2.0
    """At most this long is spent delivering queued events on a clean stop."""
    calling_ae_titles: frozenset[str] | None = None
    """Accepted calling AE titles (``--accept-aet``); None accepts any (else RJ 1/1/3)."""
    verify_identity: IdentityVerifier | None = None
    """User Identity check (``--users``); None accepts any identity or none (else RJ 1/1/1)."""
    scan_limits: ScanLimits = DEFAULT_SCAN_LIMITS
    """What one received data set may cost (``--limits``); beyond it Resource limitation."""
    delivery_lease: float = 30.0
    """On a shared database (PostgreSQL): how long a process holds the delivery of one
    subscriber's events without renewing; after a crash another takes over then."""
    retain: float = DEFAULT_RETAIN
    """Seconds a COMPLETED or CANCELED workitem is kept after it finished (``--retain``),
    and beyond that while a Deletion Lock holds it; 0 purges it as soon as none does."""


def parse_ae(spec: str) -> RemoteAE:
    """``AET=host:port`` as given to ``--ae``."""
    title, sep, address = spec.partition("=")
    if not sep:
        raise ConfigError(f"--ae expects AET=host:port, got {spec!r}")
    ae = check_ae_title(title, f"--ae {spec!r}: AE title")
    host, port = parse_host_port(address, what=f"--ae {spec!r}: address")
    return RemoteAE(ae, host, port)


def load_ae_file(path: str | Path) -> list[RemoteAE]:
    """The AEs listed in a JSON or INI file (see the module docstring)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc}") from None
        table = data.get("aes", data) if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise ConfigError(f'{where}: expected {{"aes": {{"AET": "host:port"}}}}')
        items = [(str(k), str(v)) for k, v in table.items()]
    else:
        parser = configparser.ConfigParser()
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text, source=where)
        except configparser.Error as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not parser.has_section("aes"):
            raise ConfigError(f"{where}: no [aes] section")
        items = list(parser.items("aes"))
    return [parse_ae(f"{title}={address}") for title, address in items]


def ae_table(specs: Iterable[str] = (), files: Iterable[str | Path] = ()) -> Mapping[str, RemoteAE]:
    """AE Title -> address from files first, then ``--ae`` values (later ones win)."""
    table: dict[str, RemoteAE] = {}
    for path in files:
        for remote in load_ae_file(path):
            table[remote.ae_title] = remote
    for spec in specs:
        remote = parse_ae(spec)
        table[remote.ae_title] = remote
    return MappingProxyType(table)
