"""The N-EVENT-REPORTs a UPS change causes: what each carries (PS3.4 Table CC.2.4-1).

:class:`EventReport` is one report the SCP is to send (type, UPS, Event Information,
and an AE title when it goes to one subscriber only); the functions build the Event
Information of each Event Type ID (PS3.4 CC.2.4.1). The store queues reports in the
same transaction as the change that causes them; :mod:`ups.services.scp.delivery`
sends them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.services.uids import EventType, ProcedureStepState

__all__ = [
    "ASSIGNMENT_KEYS",
    "EventReport",
    "cancel_requested",
    "progress_report",
    "scp_status_change",
    "state_report",
    "ups_assigned",
]

ASSIGNMENT_KEYS = ("ScheduledStationNameCodeSequence", "ScheduledHumanPerformersSequence")
"""Attributes whose change is a UPS Assigned event (CC.2.4.3)."""


@dataclass(frozen=True, slots=True)
class EventReport:
    """An N-EVENT-REPORT to send (PS3.4 CC.2.4): type, UPS and Event Information.

    ``ae_title`` is ``None`` for "every subscriber of the UPS"; a title sends
    it to that AE only (initial reports after a subscription, CC.2.4.3).
    """

    event_type: EventType
    iuid: str
    info: Dataset
    ae_title: str | None = None


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def copy_keys(src: Dataset, dst: Dataset, keywords: tuple[str, ...]) -> None:
    """Deep copies of ``keywords`` that ``src`` holds, into ``dst``."""
    for keyword in keywords:
        if keyword in src:
            dst.add(copy.deepcopy(src[keyword]))


def state_report(workitem: Dataset) -> Dataset:
    """Event Type 1, UPS State Report: state, input readiness, and the cancel reason."""
    info = Dataset()
    info.ProcedureStepState = _text(workitem, "ProcedureStepState")
    info.InputReadinessState = _text(workitem, "InputReadinessState")
    items = workitem.get("ProcedureStepProgressInformationSequence") or []
    if info.ProcedureStepState == ProcedureStepState.CANCELED and items:
        copy_keys(
            items[0],
            info,
            ("ReasonForCancellation", "ProcedureStepDiscontinuationReasonCodeSequence"),
        )
    return info


def cancel_requested(requesting_ae: str, request: Dataset | None = None) -> Dataset:
    """Event Type 2, UPS Cancel Requested: the requester and what it provided."""
    info = Dataset()
    info.RequestingAE = requesting_ae
    if request is not None:
        copy_keys(
            request,
            info,
            (
                "ReasonForCancellation",
                "ProcedureStepDiscontinuationReasonCodeSequence",
                "ContactURI",
                "ContactDisplayName",
            ),
        )
    return info


def progress_report(workitem: Dataset) -> Dataset:
    """Event Type 3, UPS Progress Report: the Progress Information Sequence."""
    items = []
    for src in workitem.get("ProcedureStepProgressInformationSequence") or []:
        item = Dataset()
        copy_keys(
            src,
            item,
            (
                "ProcedureStepProgress",
                "ProcedureStepProgressDescription",
                "ProcedureStepProgressParametersSequence",
                "ProcedureStepCommunicationsURISequence",
            ),
        )
        items.append(item)
    info = Dataset()
    info.ProcedureStepProgressInformationSequence = Sequence(items)
    return info


def scp_status_change(
    scp_status: str,
    subscription_list_status: str = "WARM START",
    ups_list_status: str = "WARM START",
) -> Dataset:
    """Event Type 4, SCP Status Change (CC.2.4.3).

    ``scp_status`` is RESTARTED or GOING DOWN; the list statuses are WARM
    START, or COLD STARTED (subscription list) / COLD START (UPS list) as the
    text of CC.2.4.3 spells them.
    """
    if scp_status not in ("RESTARTED", "GOING DOWN"):
        raise ValueError(f"SCP Status {scp_status!r}")
    info = Dataset()
    info.SCPStatus = scp_status
    info.SubscriptionListStatus = subscription_list_status
    info.UnifiedProcedureStepListStatus = ups_list_status
    return info


def ups_assigned(workitem: Dataset) -> Dataset:
    """Event Type 5, UPS Assigned: the scheduled station and human performers."""
    info = Dataset()
    copy_keys(workitem, info, ASSIGNMENT_KEYS)
    performers = workitem.get("ScheduledHumanPerformersSequence") or []
    if performers:
        copy_keys(performers[0], info, ("HumanPerformerCodeSequence", "HumanPerformerOrganization"))
    return info
