"""UIDs and code values of the Unified Procedure Step service (PS3.4 Annex CC).

This module owns the well-known identifiers every other UPS module speaks in:

* the UPS SOP Classes (PS3.4 CC.3.1 / PS3.6 Annex A) in their final form
  (``1.2.840.10008.5.1.4.34.6.x``) and the retired "Trial" form
  (``1.2.840.10008.5.1.4.34.4.x``) that dcm4che2's ``dcmups`` still proposes,
  grouped as a :class:`UPSFamily` so that an operation can stay within one family;
* the well-known UPS Global Subscription SOP Instances (PS3.4 CC.3.1);
* the transfer syntaxes this toolkit offers (PS3.5 Section 10 / Annex A);
* the N-EVENT-REPORT Event Type IDs (PS3.4 CC.2.4.1) and the N-ACTION
  Action Type IDs (PS3.4 CC.2.1.1, CC.2.2.1, CC.2.3.1) of the UPS service;
* the Procedure Step State values (PS3.4 CC.1.1).

Why a family: a UPS N-SET, N-GET, N-ACTION or N-EVENT-REPORT may travel on a
Pull, Watch or Event presentation context, yet its Affected/Requested SOP Class
UID is always the *Push* class of the same family (PS3.4 CC.2.1-CC.2.4,
"Requested SOP Class UID ... shall be the UPS Push SOP Class"). :func:`push_of`
answers that question for either family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType

from ups.dimse.datasets import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from ups.dimse.messages import VERIFICATION_SOP_CLASS

__all__ = [
    "VERIFICATION",
    "UPS_PUSH",
    "UPS_WATCH",
    "UPS_PULL",
    "UPS_EVENT",
    "UPS_QUERY",
    "UPS_PUSH_TRIAL",
    "UPS_WATCH_TRIAL",
    "UPS_PULL_TRIAL",
    "UPS_EVENT_TRIAL",
    "UPS_GLOBAL_SUBSCRIPTION_INSTANCE",
    "UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE",
    "GLOBAL_SUBSCRIPTION_INSTANCES",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "DEFAULT_TRANSFER_SYNTAXES",
    "TRANSFER_SYNTAXES",
    "Role",
    "UPSFamily",
    "FINAL",
    "TRIAL",
    "FAMILIES",
    "family_of",
    "push_of",
    "role_of",
    "is_ups_sop_class",
    "uid_name",
    "UID_NAMES",
    "EventType",
    "ActionType",
    "ProcedureStepState",
    "SCHEDULED",
    "IN_PROGRESS",
    "CANCELED",
    "COMPLETED",
]

# --- SOP Classes (PS3.6 Annex A, Table A-1) ---------------------------------

VERIFICATION = VERIFICATION_SOP_CLASS
"""Verification SOP Class (C-ECHO): the one definition is the DIMSE layer's."""

UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_WATCH = "1.2.840.10008.5.1.4.34.6.2"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
UPS_EVENT = "1.2.840.10008.5.1.4.34.6.4"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"

# Retired "Trial" UIDs of the Sup 96 draft that dcm4che2 dcmups uses (seed manual).
UPS_PUSH_TRIAL = "1.2.840.10008.5.1.4.34.4.1"
UPS_WATCH_TRIAL = "1.2.840.10008.5.1.4.34.4.2"
UPS_PULL_TRIAL = "1.2.840.10008.5.1.4.34.4.3"
UPS_EVENT_TRIAL = "1.2.840.10008.5.1.4.34.4.4"

# --- Well-known SOP Instances (PS3.4 CC.3.1, PS3.6 Table A-1) ---------------

UPS_GLOBAL_SUBSCRIPTION_INSTANCE = "1.2.840.10008.5.1.4.34.5"
UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE = "1.2.840.10008.5.1.4.34.5.1"
GLOBAL_SUBSCRIPTION_INSTANCES = frozenset(
    {UPS_GLOBAL_SUBSCRIPTION_INSTANCE, UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE}
)

# --- Transfer Syntaxes (PS3.5 Section 10, Annex A): defined by the DIMSE layer --

TRANSFER_SYNTAXES = (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
)
# What dcm4che2 dcmups offers without -ivrle: Explicit VR LE first, then Implicit.
DEFAULT_TRANSFER_SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)


class Role(StrEnum):
    """The five UPS SOP Classes by the job they do (PS3.4 CC.3.1)."""

    PUSH = "push"
    PULL = "pull"
    WATCH = "watch"
    EVENT = "event"
    QUERY = "query"


@dataclass(frozen=True, slots=True)
class UPSFamily:
    """One generation of UPS SOP Class UIDs: the final one or the retired Trial one.

    The Trial family has no Query class: UPS Query was added with the final
    UIDs (PS3.4 CC.3.1), so ``query`` is ``None`` there.
    """

    name: str
    push: str
    pull: str
    watch: str
    event: str
    query: str | None = None

    def uid(self, role: Role | str) -> str:
        """The SOP Class UID that plays ``role`` in this family.

        Raises ``KeyError`` when the family has no class for that role
        (Query in the Trial family).
        """
        value: str | None = getattr(self, Role(role).value)
        if value is None:
            raise KeyError(f"the {self.name} UPS family has no {Role(role).value} SOP class")
        return value

    @property
    def uids(self) -> tuple[str, ...]:
        """Every SOP Class UID of this family, Push first."""
        found = (self.push, self.pull, self.watch, self.event, self.query)
        return tuple(uid for uid in found if uid is not None)

    def role_of(self, uid: str) -> Role | None:
        """The role ``uid`` plays in this family, or ``None`` if it is not a member."""
        for role in Role:
            if getattr(self, role.value) == uid:
                return role
        return None

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, str) and uid in self.uids


FINAL = UPSFamily(
    name="final",
    push=UPS_PUSH,
    pull=UPS_PULL,
    watch=UPS_WATCH,
    event=UPS_EVENT,
    query=UPS_QUERY,
)
TRIAL = UPSFamily(
    name="trial",
    push=UPS_PUSH_TRIAL,
    pull=UPS_PULL_TRIAL,
    watch=UPS_WATCH_TRIAL,
    event=UPS_EVENT_TRIAL,
)
FAMILIES = (FINAL, TRIAL)


def family_of(uid: str) -> UPSFamily | None:
    """The UPS family ``uid`` belongs to, or ``None`` for a non-UPS SOP Class."""
    for family in FAMILIES:
        if uid in family:
            return family
    return None


def role_of(uid: str) -> Role | None:
    """The role of a UPS SOP Class UID in its family, or ``None`` for a non-UPS UID."""
    family = family_of(uid)
    return None if family is None else family.role_of(uid)


def is_ups_sop_class(uid: str) -> bool:
    """Whether ``uid`` is one of the final or Trial UPS SOP Classes."""
    return family_of(uid) is not None


def push_of(uid: str) -> str:
    """The Push SOP Class UID of the family ``uid`` belongs to.

    DIMSE-N requests of the UPS service carry the Push class as their
    Affected/Requested SOP Class UID whatever presentation context (Pull, Watch,
    Event) they travel on (PS3.4 CC.2.1-CC.2.5). Raises ``ValueError`` for a UID
    that is not a UPS SOP Class.
    """
    family = family_of(uid)
    if family is None:
        raise ValueError(f"{uid} is not a UPS SOP class UID")
    return family.push


UID_NAMES: Mapping[str, str] = MappingProxyType(
    {
        VERIFICATION: "Verification SOP Class",
        UPS_PUSH: "Unified Procedure Step - Push SOP Class",
        UPS_WATCH: "Unified Procedure Step - Watch SOP Class",
        UPS_PULL: "Unified Procedure Step - Pull SOP Class",
        UPS_EVENT: "Unified Procedure Step - Event SOP Class",
        UPS_QUERY: "Unified Procedure Step - Query SOP Class",
        UPS_PUSH_TRIAL: "Unified Procedure Step - Push SOP Class - Trial (Retired)",
        UPS_WATCH_TRIAL: "Unified Procedure Step - Watch SOP Class - Trial (Retired)",
        UPS_PULL_TRIAL: "Unified Procedure Step - Pull SOP Class - Trial (Retired)",
        UPS_EVENT_TRIAL: "Unified Procedure Step - Event SOP Class - Trial (Retired)",
        UPS_GLOBAL_SUBSCRIPTION_INSTANCE: "UPS Global Subscription SOP Instance",
        UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE: (
            "UPS Filtered Global Subscription SOP Instance"
        ),
        IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
        EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
        DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: "Deflated Explicit VR Little Endian",
        EXPLICIT_VR_BIG_ENDIAN: "Explicit VR Big Endian (Retired)",
    }
)


def uid_name(uid: str) -> str:
    """A human-readable name for the UIDs this module knows; the UID itself otherwise."""
    return UID_NAMES.get(uid, uid)


class EventType(IntEnum):
    """UPS N-EVENT-REPORT Event Type IDs (PS3.4 CC.2.4.1)."""

    UPS_STATE_REPORT = 1
    UPS_CANCEL_REQUESTED = 2
    UPS_PROGRESS_REPORT = 3
    SCP_STATUS_CHANGE = 4
    UPS_ASSIGNED = 5

    @property
    def label(self) -> str:
        """The event's name as the standard spells it."""
        return _EVENT_LABELS[self]


_EVENT_LABELS = {
    EventType.UPS_STATE_REPORT: "UPS State Report",
    EventType.UPS_CANCEL_REQUESTED: "UPS Cancel Requested",
    EventType.UPS_PROGRESS_REPORT: "UPS Progress Report",
    EventType.SCP_STATUS_CHANGE: "SCP Status Change",
    EventType.UPS_ASSIGNED: "UPS Assigned",
}


class ActionType(IntEnum):
    """UPS N-ACTION Action Type IDs (PS3.4 CC.2.1.1, CC.2.2.1, CC.2.3.1)."""

    CHANGE_STATE = 1
    REQUEST_CANCEL = 2
    SUBSCRIBE = 3
    UNSUBSCRIBE = 4
    SUSPEND_GLOBAL = 5

    @property
    def label(self) -> str:
        """The action's name as the standard spells it."""
        return _ACTION_LABELS[self]


_ACTION_LABELS = {
    ActionType.CHANGE_STATE: "Change UPS State",
    ActionType.REQUEST_CANCEL: "Request UPS Cancel",
    ActionType.SUBSCRIBE: "Subscribe to Receive UPS Event Reports",
    ActionType.UNSUBSCRIBE: "Unsubscribe from Receiving UPS Event Reports",
    ActionType.SUSPEND_GLOBAL: "Suspend Global Subscription",
}


class ProcedureStepState(StrEnum):
    """Procedure Step State (0074,1000) values (PS3.4 CC.1.1).

    A ``StrEnum``, so members compare equal to the plain CS strings on the wire.
    """

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"


SCHEDULED = ProcedureStepState.SCHEDULED
IN_PROGRESS = ProcedureStepState.IN_PROGRESS
CANCELED = ProcedureStepState.CANCELED
COMPLETED = ProcedureStepState.COMPLETED
