"""What a probe run is told: the SCP, our own AE, which groups, how to report.

The command line builds a :class:`ProbeOptions` (``dcmups probe``); the library takes
nothing else, never a parsed command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ups.net.config import AssociationConfig

__all__ = ["GROUPS", "ProbeOptions", "DEFAULT_CONFIG"]

GROUPS = ("association", "state", "contexts", "events", "find", "robustness")
"""The check groups in the order they run; ``robustness`` only with ``hostile``."""

DEFAULT_CONFIG = AssociationConfig(
    connect_timeout=5.0,
    accept_timeout=5.0,
    release_timeout=5.0,
    response_timeout=10.0,
    reaper_period=1.0,
)
"""Every wait bounded: a probe that hangs on a broken SCP reports nothing."""


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """One run of the conformance suite against ``called_ae``@``host``:``port``.

    ``listen_*`` is where the probe receives N-EVENT-REPORTs (the SCP must know that
    AE title and address to send them; port 0 picks a free one, which only an SCP told
    about it afterwards can use). ``family`` is ``auto`` (final UIDs when accepted,
    else trial), ``final`` or ``trial``. ``only`` empty means every group.
    """

    called_ae: str
    host: str
    port: int
    calling_ae: str = "DCMUPS-PROBE"
    listen_ae: str | None = None
    """None: the calling AE title."""
    listen_host: str = "0.0.0.0"
    listen_port: int = 0
    family: str = "auto"
    only: frozenset[str] = frozenset()
    hostile: bool = False
    json: bool = False
    report: Path | None = None
    quiet: bool = False
    event_timeout: float = 5.0
    """How long an expected N-EVENT-REPORT is waited for."""
    quiet_period: float = 0.5
    """How long the probe waits, after a marker event, for an event that must not come."""
    check_timeout: float = 60.0
    """Longest one check may take before it is failed."""
    config: AssociationConfig = field(default_factory=lambda: DEFAULT_CONFIG)
    run_id: str | None = None
    """Labels every workitem created (ProcedureStepLabel "dcmups-probe <run id> ...")."""

    def __post_init__(self) -> None:
        """Refuse what cannot be run (ValueError, naming the option)."""
        unknown = sorted(self.only - set(GROUPS))
        if unknown:
            raise ValueError(f"--only {', '.join(unknown)}: groups are {', '.join(GROUPS)}")
        if "robustness" in self.only and not self.hostile:
            raise ValueError("--only robustness needs --hostile")
        if self.family not in ("auto", "final", "trial"):
            raise ValueError(f"family {self.family!r}: auto, final or trial")
        if self.event_timeout <= 0 or self.quiet_period < 0 or self.check_timeout <= 0:
            raise ValueError("--event-timeout must be greater than 0")

    @property
    def receiving_ae(self) -> str:
        return self.listen_ae or self.calling_ae

    def wants(self, group: str) -> bool:
        if group == "robustness" and not self.hostile:
            return False
        return not self.only or group in self.only
