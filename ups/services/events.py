"""Typed UPS event reports: what an N-EVENT-REPORT means once it has arrived (PS3.4 CC.2.4).

A UPS SCP tells its subscribers about a workitem with N-EVENT-REPORT-RQ: the Event
Type ID (PS3.4 CC.2.4.1, types 1-5), the UPS SOP Instance UID in Affected SOP Instance
UID, and the Event Information data set. :class:`UPSEvent` is that report as the
listener hands it on, plus what only the receiver knows (the sending AE, the time it
arrived). The data set stays raw bytes until someone reads :attr:`UPSEvent.dataset`
because most consumers route or count events without looking inside; decoding every
event up front would cost more than receiving it.

The Affected SOP Class UID is UPS Push in the final standard and in what dcm4chee-arc
sends, while pynetdicom by default names the UPS Event class; both are accepted, from
the final and the retired Trial family, and :attr:`UPSEvent.family` says which.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pydicom.dataset import Dataset

from ups.dimse.datasets import LazyDataset
from ups.services.uids import (
    UPS_EVENT,
    UPS_EVENT_TRIAL,
    UPS_PUSH,
    UPS_PUSH_TRIAL,
    EventType,
)

__all__ = [
    "EVENT_SOP_CLASSES",
    "EventBatchConsumer",
    "EventCallback",
    "EVENT_TYPE_NAMES",
    "REPORTED_SOP_CLASSES",
    "EventType",
    "UPSEvent",
    "event_type_name",
]

EVENT_SOP_CLASSES: Final = frozenset({UPS_EVENT, UPS_EVENT_TRIAL})
"""Abstract syntaxes a listener accepts event reports on (final and Trial)."""

REPORTED_SOP_CLASSES: Final = frozenset({UPS_PUSH, UPS_PUSH_TRIAL, UPS_EVENT, UPS_EVENT_TRIAL})
"""Affected SOP Class UIDs an N-EVENT-REPORT-RQ may carry: Push as PS3.4 CC.2.4 says
(and dcm4chee-arc sends), or Event as pynetdicom's examples send."""

EVENT_TYPE_NAMES: Final[dict[int, str]] = {member.value: member.label for member in EventType}
"""Event Type ID -> the name PS3.4 CC.2.4.1 gives it."""

_TRIAL: Final = frozenset({UPS_PUSH_TRIAL, UPS_EVENT_TRIAL})


def event_type_name(event_type_id: int) -> str:
    """The standard's name for an Event Type ID, or ``"Event Type <n>"`` if it has none."""
    return EVENT_TYPE_NAMES.get(event_type_id, f"Event Type {event_type_id}")


@dataclass(frozen=True, slots=True)
class UPSEvent:
    """One UPS event report as received; immutable, cheap to create on the hot path.

    ``received`` is wall-clock seconds since the epoch (``time.time()``), taken when
    the complete request had been reassembled.
    """

    event_type_id: int
    iuid: str
    """Affected SOP Instance UID: the UPS, or a well-known global subscription
    instance for an SCP Status Change sent to global subscribers."""
    sop_class_uid: str
    """Affected SOP Class UID of the request (UPS Push or UPS Event)."""
    calling_aet: str
    """The AE title of the SCP that sent the report (the association requestor)."""
    called_aet: str
    received: float
    raw_dataset: LazyDataset | None = field(default=None, repr=False)
    message_id: int = 0
    context_sop_class_uid: str = UPS_EVENT
    """Abstract syntax of the presentation context it came on."""
    peer: tuple[str, int] | None = None
    """Remote address of the association, when known."""
    dataset_json: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    """The Event Information as the PS3.18 F.2 JSON model, when the listener was asked
    to produce it while checking the data set (the ``--json`` daemon): one pass over
    the bytes, no pydicom."""

    @property
    def event_type(self) -> EventType | None:
        """The :class:`EventType` member, or ``None`` for an ID outside 1-5."""
        try:
            return EventType(self.event_type_id)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        return event_type_name(self.event_type_id)

    @property
    def family(self) -> str:
        """``"trial"`` when either UID is from the retired Trial family, else ``"final"``."""
        if self.sop_class_uid in _TRIAL or self.context_sop_class_uid in _TRIAL:
            return "trial"
        return "final"

    @property
    def received_datetime(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.received, tz=_dt.UTC)

    @property
    def has_dataset(self) -> bool:
        return self.raw_dataset is not None and len(self.raw_dataset) > 0

    @property
    def dataset(self) -> Dataset:
        """The Event Information, decoded on first access (empty if none was sent).

        Raises ``ups.dimse.errors.DatasetError`` when the bytes cannot be decoded.
        """
        if self.raw_dataset is None or not len(self.raw_dataset):
            return Dataset()
        return self.raw_dataset.dataset


EventCallback = Callable[[UPSEvent], "int | None | Awaitable[int | None]"]
"""Called once per event; returns None (Success) or a status code to answer with."""


class EventBatchConsumer(Protocol):
    """Takes events a read at a time: ``add`` each, then one ``commit`` for them all.

    The daemon renders each event in ``add`` and writes the read's lines with one write
    in ``commit``; the events are answered Success only after ``commit`` returned. An
    exception from either answers the events concerned with Processing Failure, or with
    the status of a :class:`~ups.services.errors.ServiceError` (a sink whose broker is
    away raises one with 0x0213 Resource limitation: try again later).

    ``commit`` may also return an awaitable (a sink that waits for a broker's
    acknowledgements): the read's events are then answered when it completes, while the
    association goes on reading the next batch. The listener holds at most ``buffer``
    events in unfinished commits and stops reading from senders beyond that
    (:class:`~ups.services.settings.ListenerSettings`). A consumer may offer
    ``commit_then(done) -> bool`` instead: the same commit, completed by calling
    ``done(None)`` (or ``done(error)``) exactly once, from whatever callback learnt it, so
    that the answers need no future and no extra loop pass (the NATS sink's
    acknowledgements); False means nothing was added. A consumer with a true
    ``wants_json_model`` attribute gets each event's :attr:`UPSEvent.dataset_json` made
    by the scanner pass that checks the data set.
    """

    def add(self, event: UPSEvent) -> None: ...

    def commit(self) -> Awaitable[None] | None: ...
