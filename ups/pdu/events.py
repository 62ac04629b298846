"""What the association core tells its user: the indication and confirmation primitives.

PS3.8 §7 defines the Upper Layer service primitives; the state machine (§9.2) issues
them as the effects of its actions. ``machine.UpperLayer`` emits these frozen
dataclasses in order from ``events()``, one representation per primitive, so the
layer above reacts to values rather than callbacks.

``TransportClosed`` is not a PS3.8 primitive: it marks the end of the association's
life (the machine is back in Sta1) and is always the last event a core emits.
"""

from __future__ import annotations

from dataclasses import dataclass

from ups.pdu.enums import AbortReason, AbortSource
from ups.pdu.pdus import AAssociateAC, AAssociateRJ, AAssociateRQ, PDataTF


@dataclass(frozen=True, slots=True)
class AssociateIndication:
    """A-ASSOCIATE indication (AE-6): a peer asks to associate; answer accept or reject."""

    rq: AAssociateRQ


@dataclass(frozen=True, slots=True)
class AssociateConfirmation:
    """A-ASSOCIATE confirmation, accepted (AE-3): the association is established."""

    ac: AAssociateAC


@dataclass(frozen=True, slots=True)
class AssociateRejected:
    """A-ASSOCIATE confirmation, rejected.

    On the requestor this is AE-4 (the peer sent A-ASSOCIATE-RJ). On the acceptor it
    reports AE-6's provider rejection (PS3.8 §7.1.2.6), which the user never sees as
    an indication, so that a server can still log it.
    """

    rj: AAssociateRJ


@dataclass(frozen=True, slots=True)
class DataIndication:
    """P-DATA indication (DT-2, AR-6): one received P-DATA-TF, PDVs untouched."""

    pdu: PDataTF


@dataclass(frozen=True, slots=True)
class ReleaseIndication:
    """A-RELEASE indication (AR-2, or AR-8 when both sides asked at once).

    The user answers with ``release_response``; on a collision (PS3.8 §7.2 and the
    Sta9-Sta12 release-collision states) the requestor side must answer first.
    """

    collision: bool = False


@dataclass(frozen=True, slots=True)
class ReleaseConfirmation:
    """A-RELEASE confirmation (AR-3, AR-10): the peer answered our A-RELEASE-RQ."""


ARTIM_AWAITING_RQ = "ARTIM timer expired awaiting A-ASSOCIATE-RQ"
"""The ``detail`` of the AbortIndication of AA-2 in Sta2: the peer connected and sent
no request in time (the upper layer words that differently from a peer's close)."""


@dataclass(frozen=True, slots=True)
class AbortIndication:
    """A-ABORT or A-P-ABORT indication: the association ended abnormally.

    ``from_peer`` is true for an A-ABORT PDU received (AA-3), whose ``source`` and
    ``reason`` are copied from it. Otherwise this provider ended the association:
    the transport was lost (AA-4), a PDU broke the protocol (AA-8, or AA-1 before an
    A-ASSOCIATE-RQ), or ARTIM expired awaiting the request; ``detail`` says which.
    """

    source: AbortSource
    reason: AbortReason
    from_peer: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TransportClosed:
    """The machine reached Sta1: the transport is closed or must now be closed."""


UpperLayerEvent = (
    AssociateIndication
    | AssociateConfirmation
    | AssociateRejected
    | DataIndication
    | ReleaseIndication
    | ReleaseConfirmation
    | AbortIndication
    | TransportClosed
)
"""Everything ``UpperLayer.events()`` may return."""
