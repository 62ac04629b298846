"""What an event listener accepts and how much it holds: one frozen :class:`ListenerSettings`.

:func:`~ups.services.listener.listen`, :func:`~ups.services.listener.serve_events`,
:class:`~ups.services.listener.EventListener` and the ``dcmups -L`` daemon all take this
one object, so a setting is named, defaulted and checked in one place. What it means on
the wire (:func:`listener_policy`):

* the UPS Event SOP Class (final and Trial) and Verification, in any of the four
  uncompressed transfer syntaxes, with or without SCP/SCU Role Selection. dcm4chee-arc
  proposes SCU role 0 / SCP role 1 for itself (the event sender is the Event SCP) and
  fails unless that role comes back, so the policy grants the requestor the SCP role;
  pynetdicom proposes no roles and gets none back;
* the asynchronous operations window (PS3.7 D.3.3.3): a sender may have ``window``
  reports outstanding (0 = unlimited);
* the called AE title must be ours unless ``accept_any_called_ae`` (PS3.8 Table 9-21
  reason 7 otherwise); ``calling_ae_titles`` limits who may connect (reason 3
  otherwise) and ``verify_identity`` checks the User Identity sub-item (PS3.7
  D.3.3.7; refused with 1/1/1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ups
from ups.dimse.datasets import TRANSFER_SYNTAXES
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, ScanLimits
from ups.net.config import AssociationConfig
from ups.pdu.negotiation import AcceptorPolicy, IdentityVerifier, SyntaxSupport
from ups.services.events import EVENT_SOP_CLASSES
from ups.services.uids import VERIFICATION

__all__ = ["DEFAULT_BUFFER", "DEFAULT_WINDOW", "ListenerSettings", "listener_policy"]

DEFAULT_WINDOW = 64
"""Operations a peer may have outstanding at our acceptors (listener and SCP)."""
DEFAULT_BUFFER = 1000
"""Events a listener holds read but not yet taken before it stops reading."""


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Everything an event listener is told besides its address; checked on creation."""

    config: AssociationConfig = field(default_factory=AssociationConfig)
    """Timeouts, PDU sizes, TLS: the per-association settings."""
    window: int = DEFAULT_WINDOW
    """Reports a sender may have outstanding (0 = unlimited)."""
    buffer: int = DEFAULT_BUFFER
    """Events read but not yet taken; when full, the association that filled it is
    no longer read, so TCP pushes back on the sender."""
    accept_any_called_ae: bool = False
    """Accept any called AE title, not only ours."""
    calling_ae_titles: frozenset[str] | None = None
    """Accepted calling AE titles; None accepts any (else A-ASSOCIATE-RJ 1/1/3)."""
    verify_identity: IdentityVerifier | None = None
    """User Identity check (e.g. ``ups.services.access.UserTable``); None accepts any."""
    scan_limits: ScanLimits = DEFAULT_SCAN_LIMITS
    """What one event's data set may cost; beyond it the event is refused (0213)."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so that several processes share the port."""

    def __post_init__(self) -> None:
        if self.buffer < 1:
            raise ValueError("buffer must be at least 1")
        if self.window < 0:
            raise ValueError("window must be >= 0 (0 = unlimited)")


def listener_policy(
    ae_title: str | None,
    settings: ListenerSettings,
    transfer_syntaxes: tuple[str, ...] = TRANSFER_SYNTAXES,
) -> AcceptorPolicy:
    """What a listener negotiates; ``ae_title=None`` accepts any called AE title."""
    event = SyntaxSupport(transfer_syntaxes, requestor_scu=True, requestor_scp=True)
    supported = {uid: event for uid in EVENT_SOP_CLASSES}
    supported[VERIFICATION] = SyntaxSupport(transfer_syntaxes)
    return AcceptorPolicy(
        ae_titles=None if ae_title is None else frozenset({ae_title}),
        supported=supported,
        max_pdata_length=settings.config.max_pdata_receive,
        implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
        calling_ae_titles=settings.calling_ae_titles or None,
        max_ops_invoked=1,
        max_ops_performed=settings.window,
        verify_identity=settings.verify_identity,
    )
