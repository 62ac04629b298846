"""``dcmups demo``: the seed's three UPS workflows, end to end, on the loopback interface.

It starts the reference SCP (:mod:`ups.services.scp`) on a free port with a
temporary database, an event listener (:func:`ups.listen`) that the SCP knows as
``DEMOLISTENER``, and runs with the SCU (:func:`ups.connect`):

1. create, claim, update and complete a UPS (PS3.4 CC.2.5, CC.2.1, CC.2.6);
2. subscribe and unsubscribe to receive UPS event reports: one UPS with a
   deletion lock, globally, suspended, unsubscribed (CC.2.3);
3. request the cancellation of a UPS: one SCHEDULED (the SCP cancels it) and one
   IN PROGRESS (its performer is told and cancels it), CC.2.2.

Each operation is printed with its status, and each event as the listener takes
it.  The demo waits for the events each step must cause, so a missing event is a
failure (exit status 1), not a silent gap.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from types import MappingProxyType
from typing import TextIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from ups.cli.exits import CLIError, Exit
from ups.errors import DicomError
from ups.services.events import UPSEvent
from ups.services.listener import EventListener, listen
from ups.services.scp import UPSSCP
from ups.services.scp.config import RemoteAE, SCPOptions
from ups.services.scu import UPSClient, UPSResult, connect
from ups.services.uids import EventType

__all__ = ["run_demo", "Demo"]

LISTENER_AE = "DEMOLISTENER"
SCP_AE = "DCMUPSSCP"
SCU_AE = "DEMOSCU"
EVENT_TIMEOUT = 30.0


class DemoFailure(CLIError):
    """An expected event did not come, or came with the wrong content."""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _short(uid: str | None) -> str:
    text = uid or "-"
    return text if len(text) <= 24 else "..." + text[-21:]


class Demo:
    """The three workflows against one SCP, printing as they go."""

    def __init__(self, scp: UPSSCP, scu: UPSClient, listener: EventListener, out: TextIO) -> None:
        self.scp = scp
        self.scu = scu
        self.listener = listener
        self.out = out
        self.events: asyncio.Queue[UPSEvent] = asyncio.Queue()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def pump(self) -> None:
        """Print every event as the listener hands it over, and keep it for ``expect``."""
        async for event in self.listener:
            try:
                info = self._info(event)
            except DicomError as exc:  # undecodable Event Information: show why
                info = f"({exc})"
            name = f"event {event.name}"
            self.say(f"   <- {name:<31} {_short(event.iuid):<24}  {info}")
            self.events.put_nowait(event)

    @staticmethod
    def _info(event: UPSEvent) -> str:
        ds = event.dataset
        if event.event_type_id == EventType.UPS_STATE_REPORT:
            return f"{ds.get('ProcedureStepState', '')} / {ds.get('InputReadinessState', '')}"
        if event.event_type_id == EventType.UPS_CANCEL_REQUESTED:
            reason = ds.get("ReasonForCancellation", "")
            return f"by {ds.get('RequestingAE', '')}" + (f': "{reason}"' if reason else "")
        if event.event_type_id == EventType.UPS_PROGRESS_REPORT:
            items = ds.get("ProcedureStepProgressInformationSequence") or []
            if items and items[0].get("ProcedureStepProgress") is not None:
                return f"{items[0].ProcedureStepProgress}%"
        if event.event_type_id == EventType.SCP_STATUS_CHANGE:
            return str(ds.get("SCPStatus", ""))
        return ""

    async def op(self, name: str, call: Awaitable[UPSResult]) -> UPSResult:
        result = await call
        status = "0000 Success" if result.status == 0 else result.meaning
        self.say(f"-> {name:<34} {_short(result.iuid):<24}  {status}")
        return result

    async def expect(self, event_type: EventType, iuid: str, state: str | None = None) -> None:
        """Wait for the next event and check it is the one this step must cause."""
        try:
            event = await asyncio.wait_for(self.events.get(), EVENT_TIMEOUT)
        except TimeoutError:
            raise DemoFailure(
                f"no {event_type.label} for {iuid} within {EVENT_TIMEOUT:g} s"
            ) from None
        got = (event.event_type_id, event.iuid)
        if got != (event_type, iuid):
            raise DemoFailure(f"expected {event_type.label} for {iuid}, got {event.name}")
        if state is not None and event.dataset.get("ProcedureStepState") != state:
            raise DemoFailure(f"expected state {state} for {iuid}")

    async def quiet(self) -> None:
        """Once the SCP has delivered all it had, check no event is left over."""
        if not await self.scp.events.drain(EVENT_TIMEOUT):
            raise DemoFailure("the SCP did not deliver its events in time")
        if not self.events.empty():
            extra = self.events.get_nowait()
            raise DemoFailure(f"unexpected {extra.name} for {extra.iuid}")

    # ------------------------------------------------------------------ workflows

    async def create_claim_update_complete(self) -> None:
        self.say("== 1. Create, claim, update and complete a UPS")
        scu = self.scu
        ds = Dataset()
        ds.ProcedureStepLabel = "Demo: CT reconstruction"
        iuid = str((await self.op("create", scu.create(ds))).iuid)
        await self.op(
            f"subscribe {LISTENER_AE} (lock)", scu.subscribe(LISTENER_AE, iuid, deletion_lock=True)
        )
        await self.expect(EventType.UPS_STATE_REPORT, iuid, "SCHEDULED")
        tuid = str(generate_uid())
        await self.op("chstate IN PROGRESS", scu.change_state(iuid, "IN PROGRESS", tuid))
        await self.expect(EventType.UPS_STATE_REPORT, iuid, "IN PROGRESS")
        await self.op("set progress 50%", scu.set(iuid, _progress(50), tuid))
        await self.expect(EventType.UPS_PROGRESS_REPORT, iuid)
        await self.op("set performed procedure", scu.set(iuid, _performed(), tuid))
        await self.op("chstate COMPLETED", scu.change_state(iuid, "COMPLETED", tuid))
        await self.expect(EventType.UPS_STATE_REPORT, iuid, "COMPLETED")
        state_tag = tag_for_keyword("ProcedureStepState")
        assert state_tag is not None
        got = await self.op("get", scu.get(iuid, [state_tag]))
        state = got.dataset.get("ProcedureStepState") if got.dataset is not None else None
        self.say(f"   Procedure Step State = {state} (kept by the deletion lock)")
        await self.op(f"unsubscribe {LISTENER_AE}", scu.unsubscribe(LISTENER_AE, iuid))

    async def subscribe_unsubscribe(self) -> None:
        self.say("== 2. Subscribe and unsubscribe to receive UPS event reports")
        scu = self.scu
        await self.op(f"subscribe {LISTENER_AE} globally", scu.subscribe(LISTENER_AE))
        first = str((await self.op("create", scu.create())).iuid)
        await self.expect(EventType.UPS_STATE_REPORT, first, "SCHEDULED")
        await self.op(f"suspend {LISTENER_AE}", scu.suspend(LISTENER_AE))
        await self.op("create (not reported)", scu.create())
        tuid = str(generate_uid())
        await self.op("chstate first IN PROGRESS", scu.change_state(first, "IN PROGRESS", tuid))
        await self.expect(EventType.UPS_STATE_REPORT, first, "IN PROGRESS")
        await self.op(f"unsubscribe {LISTENER_AE} globally", scu.unsubscribe(LISTENER_AE))
        await self.op("set progress (not reported)", scu.set(first, _progress(10), tuid))
        query = Dataset()
        query.SOPInstanceUID = ""
        query.ProcedureStepState = ""
        query.ProcedureStepLabel = ""
        async for match in scu.find(query):  # the matches alone, each with its data set
            found = match.dataset or Dataset()
            self.say(
                f"   find: {_short(match.iuid):<24}  {found.get('ProcedureStepState', ''):<12}"
                f" {found.get('ProcedureStepLabel', '')}"
            )
        await self.quiet()

    async def request_cancel(self) -> None:
        self.say("== 3. Request cancellation of a UPS")
        scu = self.scu
        await self.op(f"subscribe {LISTENER_AE} globally", scu.subscribe(LISTENER_AE))
        scheduled = str((await self.op("create", scu.create())).iuid)
        await self.expect(EventType.UPS_STATE_REPORT, scheduled, "SCHEDULED")
        await self.op(
            "request cancel (SCHEDULED)", scu.request_cancel(scheduled, reason="duplicate order")
        )
        await self.expect(EventType.UPS_CANCEL_REQUESTED, scheduled)
        await self.expect(EventType.UPS_STATE_REPORT, scheduled, "IN PROGRESS")
        await self.expect(EventType.UPS_STATE_REPORT, scheduled, "CANCELED")
        running = str((await self.op("create", scu.create())).iuid)
        await self.expect(EventType.UPS_STATE_REPORT, running, "SCHEDULED")
        tuid = str(generate_uid())
        await self.op("chstate IN PROGRESS", scu.change_state(running, "IN PROGRESS", tuid))
        await self.expect(EventType.UPS_STATE_REPORT, running, "IN PROGRESS")
        await self.op(
            "request cancel (IN PROGRESS)",
            scu.request_cancel(running, requesting_ae="WARDCLERK", reason="patient left"),
        )
        await self.expect(EventType.UPS_CANCEL_REQUESTED, running)
        self.say("   the performer agrees and cancels")
        await self.op("set discontinuation reason", scu.set(running, _discontinued(), tuid))
        await self.expect(EventType.UPS_PROGRESS_REPORT, running)
        await self.op("chstate CANCELED", scu.change_state(running, "CANCELED", tuid))
        await self.expect(EventType.UPS_STATE_REPORT, running, "CANCELED")
        await self.op(f"unsubscribe {LISTENER_AE} globally", scu.unsubscribe(LISTENER_AE))


def _progress(percent: int) -> Dataset:
    item = Dataset()
    item.ProcedureStepProgress = percent
    item.ProcedureStepProgressDescription = "reconstructing"
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = DicomSequence([item])
    return ds


def _performed() -> Dataset:
    """The Final State attributes COMPLETED needs (PS3.4 Table CC.2.5-3, code P)."""
    item = Dataset()
    item.PerformedStationNameCodeSequence = DicomSequence([_code("RECON1", "99DEMO", "Recon")])
    item.PerformedProcedureStepStartDateTime = "20240101100000"
    item.PerformedProcedureStepEndDateTime = "20240101101500"
    item.PerformedWorkitemCodeSequence = DicomSequence([_code("110005", "DCM", "Reconstruction")])
    item.OutputInformationSequence = DicomSequence([])
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = DicomSequence([item])
    return ds


def _discontinued() -> Dataset:
    """The Final State attributes CANCELED needs (PS3.4 Table CC.2.5-3, code X)."""
    item = Dataset()
    item.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence(
        [_code("110513", "DCM", "Discontinued for unspecified reason")]
    )
    item.ReasonForCancellation = "patient left"
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = DicomSequence([item])
    return ds


async def run_demo(out: TextIO) -> int:
    """Run the three workflows; 0 when every operation and event was as expected."""
    with tempfile.TemporaryDirectory(prefix="dcmups-demo-") as tmp:
        try:
            await _run(Path(tmp), out)
        except (DicomError, OSError) as exc:
            print(f"demo failed: {exc}", file=out, flush=True)
            return Exit.FAILURE_STATUS
    print("demo finished: all workflows succeeded", file=out, flush=True)
    return Exit.OK


async def _run(tmp: Path, out: TextIO) -> None:
    async with listen(f"{LISTENER_AE}@127.0.0.1:0") as listener:
        remote = {LISTENER_AE: RemoteAE(LISTENER_AE, "127.0.0.1", listener.port)}
        options = SCPOptions(
            ae_title=SCP_AE,
            host="127.0.0.1",
            port=0,
            db=tmp / "demo.db",
            remote_aes=MappingProxyType(remote),
            announce_status=False,
            event_idle=1.0,
        )
        async with UPSSCP(options) as scp:
            print(
                f"SCP {SCP_AE} on 127.0.0.1:{scp.port}, listener {LISTENER_AE} on"
                f" 127.0.0.1:{listener.port}, database {options.db}",
                file=out,
                flush=True,
            )
            scp_address = f"{SCP_AE}@127.0.0.1:{scp.port}"
            async with connect(scp_address, calling_aet=SCU_AE) as scu:
                demo = Demo(scp, scu, listener, out)
                pump = asyncio.get_running_loop().create_task(demo.pump())
                try:
                    await demo.create_claim_update_complete()
                    await demo.subscribe_unsubscribe()
                    await demo.request_cancel()
                    await demo.quiet()
                finally:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
