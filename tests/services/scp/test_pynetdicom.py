"""pynetdicom, a UPS SCU and event receiver this project did not write, against our SCP.

pynetdicom is blocking and threaded, so each of its calls runs in a worker thread
while the event loop serves the SCP.  Events arrive at a pynetdicom listener that
accepts the UPS Event context with the SCP role for the requestor (our SCP).
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import generate_uid

pynetdicom = pytest.importorskip("pynetdicom")

from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.events import EventHandlerType  # noqa: E402

from tests.services.scp.test_service import (  # noqa: E402
    cancel_reason,
    final_state_attributes,
    progress,
    scp_options,
)
from ups.services.scp import UPSSCP  # noqa: E402
from ups.services.scp.attributes import check_create  # noqa: E402
from ups.services.uids import (  # noqa: E402
    UPS_EVENT,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_PULL,
    UPS_PUSH,
    UPS_QUERY,
    UPS_WATCH,
    VERIFICATION,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


@dataclass(frozen=True, slots=True)
class PNEvent:
    called_ae: str
    event_type: int
    iuid: str
    sop_class: str
    info: Dataset


class PNListener:
    """A pynetdicom UPS Event SCU (receiver) on a free loopback port."""

    def __init__(self) -> None:
        self.events: queue.Queue[PNEvent] = queue.Queue()
        self.ae = AE(ae_title="PYLISTEN")
        self.ae.add_supported_context(UPS_EVENT, scu_role=True, scp_role=True)
        self.ae.add_supported_context(VERIFICATION)
        self.ae.require_called_aet = False
        handlers: list[EventHandlerType] = [(evt.EVT_N_EVENT_REPORT, self._on_event)]
        server = self.ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        assert server is not None
        self.server = server
        self.port = int(server.server_address[1])

    def _on_event(self, event: Any) -> tuple[int, None]:
        rq = event.request
        self.events.put(
            PNEvent(
                str(event.assoc.acceptor.ae_title),
                int(rq.EventTypeID),
                str(rq.AffectedSOPInstanceUID),
                str(rq.AffectedSOPClassUID),
                event.event_information,
            )
        )
        return 0x0000, None

    async def next(self, timeout: float = 10.0) -> PNEvent:
        return await asyncio.to_thread(self.events.get, True, timeout)

    async def take(self, count: int) -> list[PNEvent]:
        return [await self.next() for _ in range(count)]

    def close(self) -> None:
        self.server.shutdown()


class PNClient:
    """A pynetdicom UPS SCU association; each call runs in a worker thread."""

    def __init__(self, port: int, aet: str = "PYSCU") -> None:
        ae = AE(ae_title=aet)
        for uid in (
            UPS_PUSH,
            UPS_PULL,
            UPS_WATCH,
            UPS_QUERY,
        ):
            ae.add_requested_context(uid)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        self.assoc = ae.associate("127.0.0.1", port, ae_title="UPSSCP")
        assert self.assoc.is_established

    async def create(self, iuid: str, ds: Dataset) -> int:
        status, _ = await asyncio.to_thread(self.assoc.send_n_create, ds, UPS_PUSH, iuid)
        return int(status.Status)

    async def action(self, action: int, iuid: str, ds: Dataset, meta: str) -> int:
        status, _ = await asyncio.to_thread(
            self.assoc.send_n_action, ds, action, UPS_PUSH, iuid, meta_uid=meta
        )
        return int(status.Status)

    async def set(self, iuid: str, ds: Dataset) -> int:
        status, _ = await asyncio.to_thread(
            self.assoc.send_n_set,
            ds,
            UPS_PUSH,
            iuid,
            meta_uid=UPS_PULL,
        )
        return int(status.Status)

    async def get(self, iuid: str, tags: list[int]) -> tuple[int, Dataset | None]:
        status, ds = await asyncio.to_thread(
            self.assoc.send_n_get, [Tag(t) for t in tags], UPS_PUSH, iuid
        )
        return int(status.Status), ds

    async def find(self, query: Dataset, model: str) -> list[tuple[int, Dataset | None]]:
        def run() -> list[tuple[int, Dataset | None]]:
            return [(int(s.Status), ds) for s, ds in self.assoc.send_c_find(query, model)]

        return await asyncio.to_thread(run)

    async def close(self) -> None:
        await asyncio.to_thread(self.assoc.release)


def new_workitem(label: str = "PYNETDICOM") -> Dataset:
    """An N-CREATE data set built with pydicom alone (PS3.4 Table CC.2.5-3)."""
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = label
    ds.WorklistLabel = "PY"
    ds.ScheduledProcedureStepStartDateTime = "20240101120000"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PY1"
    ds.TransactionUID = None
    ds.ScheduledStationNameCodeSequence = DicomSequence([])
    ds.ProcedureStepProgressInformationSequence = DicomSequence([])
    ds.UnifiedProcedureStepPerformedProcedureSequence = DicomSequence([])
    return ds


def watch(ae: str, lock: bool | None = None) -> Dataset:
    ds = Dataset()
    ds.ReceivingAE = ae
    if lock is not None:
        ds.DeletionLock = "TRUE" if lock else "FALSE"
    return ds


def state(value: str, tuid: str) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepState = value
    ds.TransactionUID = tuid
    return ds


def with_tuid(ds: Dataset, tuid: str) -> Dataset:
    ds.TransactionUID = tuid
    return ds


@pytest.fixture
def listener() -> Iterator[PNListener]:
    pn = PNListener()
    yield pn
    pn.close()


@pytest.fixture
async def scp(tmp_path: Path, listener: PNListener) -> AsyncIterator[UPSSCP]:
    opts = scp_options(tmp_path / "ups.db", {"PYLISTEN": listener.port, "PYPERF": listener.port})
    async with UPSSCP(opts) as s:
        yield s


@pytest.fixture
async def pn(scp: UPSSCP) -> AsyncIterator[PNClient]:
    c = await asyncio.to_thread(PNClient, scp.port)
    yield c
    await c.close()


async def test_create_claim_update_complete(
    scp: UPSSCP, pn: PNClient, listener: PNListener
) -> None:
    iuid, tuid = str(generate_uid()), str(generate_uid())
    assert await pn.create(iuid, new_workitem()) == 0x0000
    assert await pn.action(3, iuid, watch("PYLISTEN", True), UPS_WATCH) == 0
    first = await listener.next()
    assert (first.called_ae, first.event_type, first.iuid) == ("PYLISTEN", 1, iuid)
    assert first.sop_class == UPS_PUSH
    assert first.info.ProcedureStepState == "SCHEDULED"
    assert await pn.action(1, iuid, state("IN PROGRESS", tuid), UPS_PULL) == 0
    assert await pn.set(iuid, with_tuid(progress(30), tuid)) == 0
    assert await pn.set(iuid, with_tuid(final_state_attributes(), tuid)) == 0
    assert await pn.action(1, iuid, state("COMPLETED", tuid), UPS_PULL) == 0
    events = await listener.take(3)
    assert [e.event_type for e in events] == [1, 3, 1]
    assert [events[0].info.ProcedureStepState, events[2].info.ProcedureStepState] == [
        "IN PROGRESS",
        "COMPLETED",
    ]
    status, got = await pn.get(iuid, [0x00741000, 0x00081195])
    assert status == 0 and got is not None
    assert got.ProcedureStepState == "COMPLETED" and "TransactionUID" not in got
    assert await pn.action(4, iuid, watch("PYLISTEN"), UPS_WATCH) == 0
    # No lock holds it now; the retention window does (issue 12): the performer's retry
    # of its COMPLETED is the B306 warning, N-SET is C300, N-GET shows the final state.
    assert await pn.action(1, iuid, state("COMPLETED", tuid), UPS_PULL) == 0xB306
    assert await pn.set(iuid, with_tuid(progress(100), tuid)) == 0xC300
    status, got = await pn.get(iuid, [0x00741000])
    assert status == 0 and got is not None and got.ProcedureStepState == "COMPLETED"


async def test_subscribe_unsubscribe_global(
    scp: UPSSCP, pn: PNClient, listener: PNListener
) -> None:
    glob = UPS_GLOBAL_SUBSCRIPTION_INSTANCE
    assert await pn.action(3, glob, watch("PYLISTEN", False), UPS_WATCH) == 0
    first = str(generate_uid())
    assert await pn.create(first, new_workitem()) == 0
    event = await listener.next()
    assert (event.event_type, event.iuid, event.info.ProcedureStepState) == (1, first, "SCHEDULED")
    assert await pn.action(4, glob, watch("PYLISTEN"), UPS_WATCH) == 0
    assert await pn.create(str(generate_uid()), new_workitem()) == 0
    assert await scp.events.drain(5.0)
    assert listener.events.empty()


async def test_request_cancel(scp: UPSSCP, pn: PNClient, listener: PNListener) -> None:
    iuid, tuid = str(generate_uid()), str(generate_uid())
    assert await pn.create(iuid, new_workitem()) == 0
    assert await pn.action(1, iuid, state("IN PROGRESS", tuid), UPS_PULL) == 0
    # the performer watches its workitem
    assert await pn.action(3, iuid, watch("PYPERF", False), UPS_WATCH) == 0
    initial = await listener.next()
    assert (initial.event_type, initial.info.ProcedureStepState) == (1, "IN PROGRESS"), initial
    other = await asyncio.to_thread(PNClient, scp.port, "PYREQ")
    try:
        request = Dataset()
        request.ReasonForCancellation = "patient left"
        assert await other.action(2, iuid, request, UPS_PUSH) == 0
    finally:
        await other.close()
    asked = await listener.next()
    assert (asked.event_type, asked.info.RequestingAE) == (2, "PYREQ")
    assert asked.info.ReasonForCancellation == "patient left"
    # the performer agrees and cancels
    assert await pn.set(iuid, with_tuid(cancel_reason(), tuid)) == 0
    assert await pn.action(1, iuid, state("CANCELED", tuid), UPS_PULL) == 0
    # the N-SET of the progress item is reported (type 3), then the state (type 1)
    reported, done = await listener.take(2)
    assert reported.event_type == 3
    assert (done.event_type, done.info.ProcedureStepState) == (1, "CANCELED")


async def test_find_pending_responses(scp: UPSSCP, pn: PNClient) -> None:
    for label in ("FINDME", "FINDME", "OTHER"):
        assert await pn.create(str(generate_uid()), new_workitem(label)) == 0
    query = Dataset()
    query.ProcedureStepLabel = "FINDME"
    query.PatientName = ""
    query.SOPInstanceUID = ""
    for model in (UPS_PULL, UPS_WATCH, UPS_QUERY):
        results = await pn.find(query, model)
        assert [s for s, _ in results] == [0xFF00, 0xFF00, 0x0000]
        for _, ds in results[:2]:
            assert ds is not None and ds.PatientName == "Doe^Jane"


async def test_find_c_cancel(scp: UPSSCP, pn: PNClient) -> None:
    count = 600

    # Large matches (6 MB in all) fill every buffer between the SCP and this slow SCU,
    # so the SCP is still streaming when the C-CANCEL-RQ arrives: no race to lose.
    def fill() -> None:
        for _ in range(count):
            workitem = new_workitem()
            workitem.CommentsOnTheScheduledProcedureStep = "x" * 10_000
            creation = check_create(workitem, iuid=str(generate_uid()))
            scp.store.create_workitem(creation.dataset, now=time.time())

    await asyncio.to_thread(fill)

    def find_then_cancel() -> list[int]:
        query = Dataset()
        query.PatientName = ""
        query.CommentsOnTheScheduledProcedureStep = ""
        statuses: list[int] = []
        for status, _ in pn.assoc.send_c_find(query, UPS_PULL, msg_id=7):
            statuses.append(int(status.Status))
            if len(statuses) == 3:
                context = pn.assoc._get_valid_context(UPS_PULL, "", "scu")
                pn.assoc.send_c_cancel(7, context.context_id)
        return statuses

    statuses = await asyncio.to_thread(find_then_cancel)
    assert statuses[-1] == 0xFE00 and len(statuses) < count + 1
    assert scp.finds_cancelled == 1
