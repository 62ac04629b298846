"""The reference UPS SCP against our own SCU and a minimal event receiver (PS3.4 Annex CC)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

import ups
from tests.services.scp.workitems import NOW, request
from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.messages import (
    CFindRQ,
    NEventReportRQ,
    NEventReportRSP,
    Request,
    Response,
)
from ups.net.association import RequestContext
from ups.net.server import Server, serve
from ups.pdu.negotiation import AcceptedContext, AcceptorPolicy, SyntaxSupport
from ups.services.address import parse_listen
from ups.services.errors import ConfigError
from ups.services.scp import UPSSCP
from ups.services.scp.attributes import check_create
from ups.services.scp.config import (
    RemoteAE,
    SCPOptions,
    ae_table,
    load_ae_file,
    parse_ae,
)
from ups.services.scp.finding import PAGE
from ups.services.scp.prefilter import Prefilter
from ups.services.scp.store import Candidates
from ups.services.scu import SCUOptions, UPSClient, UPSFailure
from ups.services.uids import (
    UPS_EVENT,
    UPS_EVENT_TRIAL,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_PULL,
    UPS_PUSH,
    UPS_PUSH_TRIAL,
    VERIFICATION,
    EventType,
)

pytestmark = pytest.mark.timeout(30)

_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


# ----------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class Received:
    """One N-EVENT-REPORT as the test receiver saw it."""

    called_ae: str
    calling_ae: str
    event_type: int
    iuid: str
    sop_class: str
    info: Dataset


class EventReceiver:
    """A bare UPS Event SCU (the receiving side) built on ups.net, for tests only."""

    def __init__(self, status: int = 0x0000) -> None:
        self.status = status
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.associations = 0
        self._server: Server | None = None

    async def start(self, port: int = 0) -> EventReceiver:
        support = SyntaxSupport(_SYNTAXES, requestor_scu=True, requestor_scp=True)
        policy = AcceptorPolicy(
            ae_titles=None,
            supported={UPS_EVENT: support, UPS_EVENT_TRIAL: support, VERIFICATION: support},
            max_pdata_length=16384,
            implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        )
        self._server = await serve(
            "127.0.0.1",
            port,
            policy,
            handlers={UPS_EVENT: self._on_event, UPS_EVENT_TRIAL: self._on_event},
            on_established=self._on_established,
        )
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    def _on_established(self, _association: object) -> None:
        self.associations += 1

    def _on_event(self, request: Request, ctx: RequestContext) -> Response:
        assert isinstance(request, NEventReportRQ)
        info = decode_dataset(request.dataset or b"", ctx.context.transfer_syntax)
        self.queue.put_nowait(
            Received(
                ctx.association.local_ae_title,
                ctx.association.remote_ae_title,
                request.event_type_id,
                request.affected_sop_instance_uid,
                request.affected_sop_class_uid,
                info,
            )
        )
        return NEventReportRSP(
            request.message_id,
            self.status,
            request.affected_sop_class_uid,
            request.affected_sop_instance_uid,
            request.event_type_id,
        )

    async def next(self, timeout: float = 5.0) -> Received:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def take(self, count: int, timeout: float = 5.0) -> list[Received]:
        return [await self.next(timeout) for _ in range(count)]

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close(1.0)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scp_options(db: Path, aes: dict[str, int], **kw: object) -> SCPOptions:
    remote = {ae: RemoteAE(ae, "127.0.0.1", port) for ae, port in aes.items()}
    base: dict[str, object] = dict(
        ae_title="UPSSCP",
        host="127.0.0.1",
        port=0,
        db=db,
        remote_aes=remote,
        event_idle=0.3,
        retry_initial=0.1,
        retry_max=0.4,
        shutdown_flush=0.5,
        announce_status=False,
    )
    base.update(kw)
    return SCPOptions(**base)  # type: ignore[arg-type]


async def client(port: int, **kw: object) -> UPSClient:
    options = SCUOptions(calling_ae_title=str(kw.pop("aet", "SCU")), **kw)  # type: ignore[arg-type]
    return await ups.connect(f"UPSSCP@127.0.0.1:{port}", options)


def code(value: str, scheme: str = "DCM", meaning: str = "x") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def final_state_attributes() -> Dataset:
    """What PS3.4 Table CC.2.5-3 requires (P) before COMPLETED."""
    performed = Dataset()
    performed.PerformedStationNameCodeSequence = DicomSequence([code("ST1")])
    performed.PerformedProcedureStepStartDateTime = "20240101100000"
    performed.PerformedProcedureStepEndDateTime = "20240101110000"
    performed.PerformedWorkitemCodeSequence = DicomSequence([code("WI1")])
    performed.OutputInformationSequence = DicomSequence([])
    ds = Dataset()
    ds.UnifiedProcedureStepPerformedProcedureSequence = DicomSequence([performed])
    return ds


def progress(percent: int) -> Dataset:
    item = Dataset()
    item.ProcedureStepProgress = percent
    item.ProcedureStepProgressDescription = f"{percent}%"
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = DicomSequence([item])
    return ds


def cancel_reason() -> Dataset:
    """What PS3.4 Table CC.2.5-3 requires (X) before CANCELED."""
    item = Dataset()
    item.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence([code("110513")])
    ds = Dataset()
    ds.ProcedureStepProgressInformationSequence = DicomSequence([item])
    return ds


@pytest.fixture
async def receiver() -> AsyncIterator[EventReceiver]:
    r = await EventReceiver().start()
    yield r
    await r.close()


@pytest.fixture
async def scp(tmp_path: Path, receiver: EventReceiver) -> AsyncIterator[UPSSCP]:
    opts = scp_options(tmp_path / "ups.db", {"WATCHER": receiver.port, "OTHER": receiver.port})
    async with UPSSCP(opts) as s:
        yield s


# ----------------------------------------------------------------------------- basics


async def test_echo_and_create_get(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        assert (await scu.echo()).status == 0
        created = await scu.create(iuid="1.2.3.4.5")
        assert created.status == 0 and created.iuid == "1.2.3.4.5"
        got = await scu.get("1.2.3.4.5")
        assert got.dataset is not None
        assert got.dataset.SOPClassUID == UPS_PUSH
        assert got.dataset.ProcedureStepState == "SCHEDULED"
        assert "TransactionUID" not in got.dataset  # CC.2.7.3
        some = await scu.get("1.2.3.4.5", [0x00741000])
        assert some.dataset is not None and list(some.dataset.keys()) == [0x00741000]


async def test_trial_family(scp: UPSSCP) -> None:
    async with await client(scp.port, family="trial") as scu:
        created = await scu.create()
        assert created.iuid is not None
        got = await scu.get(created.iuid)
        assert got.dataset is not None and got.dataset.SOPClassUID == UPS_PUSH_TRIAL


async def test_full_workflow_with_events(scp: UPSSCP, receiver: EventReceiver) -> None:
    tuid = str(generate_uid())
    async with await client(scp.port) as scu:
        iuid = (await scu.create()).iuid
        assert iuid is not None
        await scu.subscribe("WATCHER", iuid, deletion_lock=True)
        initial = await receiver.next()
        assert (initial.event_type, initial.info.ProcedureStepState) == (1, "SCHEDULED")
        assert initial.sop_class == UPS_PUSH and initial.called_ae == "WATCHER"
        assert initial.calling_ae == "UPSSCP"
        await scu.change_state(iuid, "IN PROGRESS", tuid)
        await scu.set(iuid, progress(50), tuid)
        await scu.set(iuid, final_state_attributes(), tuid)
        await scu.change_state(iuid, "COMPLETED", tuid)
        events = await receiver.take(3)
        assert [(e.event_type, e.iuid) for e in events] == [(1, iuid), (3, iuid), (1, iuid)]
        assert events[0].info.ProcedureStepState == "IN PROGRESS"
        assert (
            events[1].info.ProcedureStepProgressInformationSequence[0].ProcedureStepProgress == 50
        )
        assert events[2].info.ProcedureStepState == "COMPLETED"
        # the deletion lock keeps the COMPLETED UPS; once released, the retention window
        assert (await scu.get(iuid)).dataset.ProcedureStepState == "COMPLETED"  # type: ignore[union-attr]
        await scu.unsubscribe("WATCHER", iuid)
        assert (await scu.get(iuid)).dataset.ProcedureStepState == "COMPLETED"  # type: ignore[union-attr]
    # a burst of events travelled on one association
    assert receiver.associations == 1


async def test_without_retention_a_finished_ups_without_lock_is_purged(tmp_path: Path) -> None:
    """``retain=0`` (``--retain 0``): the former behaviour, purged as soon as nothing holds it."""
    tuid = str(generate_uid())
    async with (
        UPSSCP(scp_options(tmp_path / "ups.db", {}, retain=0)) as scp,
        await client(scp.port) as scu,
    ):
        iuid = (await scu.create()).iuid
        assert iuid is not None
        await scu.change_state(iuid, "IN PROGRESS", tuid)
        await scu.set(iuid, cancel_reason(), tuid)
        await scu.change_state(iuid, "CANCELED", tuid)
        with pytest.raises(UPSFailure) as info:
            await scu.get(iuid)
        assert info.value.status == 0xC307


async def test_two_claims_exactly_one_wins(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        iuid = (await scu.create()).iuid
        assert iuid is not None
    clients = [await client(scp.port, aet=f"SCU{i}") for i in range(8)]
    tuids = [str(generate_uid()) for _ in clients]

    async def claim(scu: UPSClient, tuid: str) -> int:
        try:
            return (await scu.change_state(iuid, "IN PROGRESS", tuid)).status
        except UPSFailure as exc:
            return exc.status

    statuses = await asyncio.gather(*(claim(c, t) for c, t in zip(clients, tuids, strict=True)))
    for c in clients:
        await c.release()
    assert sorted(statuses) == [0x0000] + [0xC301] * 7
    winner = tuids[statuses.index(0)]
    stored = await asyncio.to_thread(scp.store.get_workitem, iuid)
    assert stored is not None and stored.TransactionUID == winner


async def test_request_cancel_scheduled(scp: UPSSCP, receiver: EventReceiver) -> None:
    async with await client(scp.port, aet="CANCELLER") as scu:
        iuid = (await scu.create()).iuid
        assert iuid is not None
        await scu.subscribe("WATCHER", iuid, deletion_lock=True)
        await receiver.next()
        await scu.request_cancel(iuid, reason="not needed", contact_display_name="Dr X")
        events = await receiver.take(3)
        assert [e.event_type for e in events] == [2, 1, 1]
        assert events[0].info.RequestingAE == "CANCELLER"
        assert events[0].info.ReasonForCancellation == "not needed"
        assert [e.info.ProcedureStepState for e in events[1:]] == ["IN PROGRESS", "CANCELED"]
        got = await scu.get(iuid)
        assert got.dataset is not None and got.dataset.ProcedureStepState == "CANCELED"


async def test_request_cancel_in_progress_notifies_performer(
    scp: UPSSCP, receiver: EventReceiver
) -> None:
    tuid = str(generate_uid())
    async with await client(scp.port) as scu:
        iuid = (await scu.create()).iuid
        assert iuid is not None
        await scu.change_state(iuid, "IN PROGRESS", tuid)
        await scu.subscribe("WATCHER", iuid)
        assert (await receiver.next()).info.ProcedureStepState == "IN PROGRESS"
        await scu.request_cancel(iuid, requesting_ae="BOSS")
        event = await receiver.next()
        assert (event.event_type, event.info.RequestingAE) == (2, "BOSS")
        got = await scu.get(iuid)
        assert got.dataset is not None and got.dataset.ProcedureStepState == "IN PROGRESS"


# ----------------------------------------------------------------------------- subscriptions


async def test_global_filtered_suspend_unsubscribe(scp: UPSSCP, receiver: EventReceiver) -> None:
    async with await client(scp.port) as scu:
        before = (await scu.create()).iuid
        # global with lock: an initial report for every existing UPS
        await scu.subscribe("WATCHER", deletion_lock=True)
        first = await receiver.next()
        assert (first.called_ae, first.iuid, first.event_type) == ("WATCHER", before, 1)
        keys = Dataset()
        keys.ScheduledProcedureStepPriority = "HIGH"
        await scu.subscribe("OTHER", matching_keys=keys)
        high = Dataset()
        high.ScheduledProcedureStepPriority = "HIGH"
        made_high = (await scu.create(high)).iuid
        made_low = (await scu.create()).iuid
        got = await receiver.take(3)
        seen = sorted((e.called_ae, e.iuid) for e in got)
        assert seen == sorted([("WATCHER", made_high), ("OTHER", made_high), ("WATCHER", made_low)])
        await scu.suspend("WATCHER")
        after_suspend = (await scu.create()).iuid
        assert after_suspend is not None
        # suspended: no report for the new UPS, yet the existing ones still report
        tuid = str(generate_uid())
        assert made_low is not None
        await scu.change_state(made_low, "IN PROGRESS", tuid)
        event = await receiver.next()
        assert (event.called_ae, event.iuid) == ("WATCHER", made_low)
        await scu.unsubscribe("WATCHER")
        await scu.set(made_low, cancel_reason(), tuid)
        await scu.change_state(made_low, "CANCELED", tuid)
        assert await scp.events.drain(5.0)
        assert receiver.queue.empty()


async def test_unknown_receiving_ae(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        with pytest.raises(UPSFailure) as info:
            await scu.subscribe("NOBODY")
        assert info.value.status == 0xC308


# ----------------------------------------------------------------------------- delivery


async def test_subscriber_down_then_up_gets_every_event(tmp_path: Path) -> None:
    port = free_port()
    opts = scp_options(tmp_path / "ups.db", {"LATE": port})
    async with UPSSCP(opts) as s, await client(s.port) as scu:
        await scu.subscribe("LATE", deletion_lock=False)
        made = [(await scu.create()).iuid for _ in range(5)]
        assert await s.events.drain(5.0)
        assert s.events.failed_attempts >= 1 and s.events.delivered == 0
        late = await EventReceiver().start(port)
        try:
            got = await late.take(5)
            assert [e.iuid for e in got] == made  # in order, none lost
            assert await s.events.drain(5.0)
            assert s.events.delivered == 5
        finally:
            await late.close()


async def test_refused_event_is_not_resent(tmp_path: Path) -> None:
    picky = await EventReceiver(status=0x0110).start()
    try:
        async with UPSSCP(scp_options(tmp_path / "ups.db", {"PICKY": picky.port})) as s:
            async with await client(s.port) as scu:
                await scu.subscribe("PICKY")
                await scu.create()
            await picky.next()
            assert await s.events.drain(5.0)
            assert s.events.refused == 1 and s.events.failed_attempts == 0
            pending = await asyncio.to_thread(s.store.next_event_time)
            assert pending is None
    finally:
        await picky.close()


async def test_restart_announces_status(tmp_path: Path, receiver: EventReceiver) -> None:
    opts = scp_options(tmp_path / "ups.db", {"WATCHER": receiver.port}, announce_status=True)
    async with UPSSCP(opts) as s, await client(s.port) as scu:
        await scu.subscribe("WATCHER")
    down = await receiver.next()
    assert (down.event_type, down.info.SCPStatus) == (EventType.SCP_STATUS_CHANGE, "GOING DOWN")
    assert down.iuid == UPS_GLOBAL_SUBSCRIPTION_INSTANCE
    async with UPSSCP(opts):
        up = await receiver.next()
        assert (up.event_type, up.info.SCPStatus) == (4, "RESTARTED")
        assert up.info.SubscriptionListStatus == "WARM START"


# ----------------------------------------------------------------------------- C-FIND


async def test_find_matches_and_return_keys(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        for label in ("A", "B", "A"):
            ds = Dataset()
            ds.ProcedureStepLabel = label
            await scu.create(ds)
        query = Dataset()
        query.ProcedureStepLabel = "A"
        query.ProcedureStepState = ""
        query.SOPInstanceUID = ""
        query.TransactionUID = ""
        matches = scu.find(query)
        results = [r async for r in matches]
        assert [r.status for r in results] == [0xFF00, 0xFF00]
        assert matches.final is not None and matches.final.status == 0x0000
        for r in results:
            assert r.dataset is not None
            assert r.dataset.ProcedureStepLabel == "A"
            assert r.dataset.ProcedureStepState == "SCHEDULED"
            assert "TransactionUID" not in r.dataset


async def test_find_handler_stops_on_cancel(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        for _ in range(5):
            await scu.create()
    context = AcceptedContext(1, UPS_PULL, "1.2.840.10008.1.2.1")
    ctx = RequestContext(None, context)  # type: ignore[arg-type]
    rq = CFindRQ(7, UPS_PULL, dataset=encode_dataset(Dataset(), context.transfer_syntax))
    stream = scp._find(rq, ctx)
    first = await anext(stream)
    assert first.status == 0xFF00
    ctx.cancelled = True  # what the runtime does on C-CANCEL-RQ
    rest = [r.status async for r in stream]
    assert rest == [0xFE00]
    assert scp.finds_cancelled == 1


class _CountingCandidates:
    """A store's Candidates that counts what the C-FIND handler asks of it."""

    def __init__(self, inner: Candidates, log: list[str]) -> None:
        self.inner, self.log = inner, log

    def fetch(self, size: int) -> list[bytes]:
        self.log.append("fetch")
        return self.inner.fetch(size)

    def close(self) -> None:
        self.log.append("close")
        self.inner.close()


def _counted(scp: UPSSCP, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []
    store = scp.store
    original = store.find_candidates

    def find_candidates(prefilter: Prefilter) -> Candidates:
        return _CountingCandidates(original(prefilter), log)

    monkeypatch.setattr(store, "find_candidates", find_candidates)
    for i in range(PAGE + 5):
        created = check_create(request(), iuid=f"1.2.9.{i}", now=NOW)
        store.create_workitem(created.dataset, now=0.0)
    return log


def _find_stream(scp: UPSSCP) -> tuple[AsyncGenerator[Response, None], RequestContext]:
    context = AcceptedContext(1, UPS_PULL, "1.2.840.10008.1.2.1")
    ctx = RequestContext(None, context)  # type: ignore[arg-type]
    rq = CFindRQ(7, UPS_PULL, dataset=encode_dataset(Dataset(), context.transfer_syntax))
    return scp._find(rq, ctx), ctx


async def test_find_reads_a_page_only_when_the_last_is_sent(
    scp: UPSSCP, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _counted(scp, monkeypatch)
    stream, _ = _find_stream(scp)
    for _ in range(PAGE):
        assert (await anext(stream)).status == 0xFF00
    assert log == ["fetch"]  # one page read, all of it sent: nothing more yet
    assert (await anext(stream)).status == 0xFF00
    assert log == ["fetch", "fetch"]
    rest = [r.status async for r in stream]
    assert rest == [0xFF00] * 4 + [0x0000]
    assert log[-1] == "close" and log.count("close") == 1


async def test_find_closes_the_cursor_on_cancel_and_when_stopped(
    scp: UPSSCP, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _counted(scp, monkeypatch)
    stream, ctx = _find_stream(scp)
    await anext(stream)
    ctx.cancelled = True
    assert [r.status async for r in stream] == [0xFE00]
    assert log == ["fetch", "close"]
    log.clear()
    stream, _ = _find_stream(scp)
    await anext(stream)
    await stream.aclose()  # what serve_stream does when the association ends
    assert log == ["fetch", "close"]


async def test_find_cancel_over_the_wire(scp: UPSSCP) -> None:
    async with await client(scp.port) as scu:
        for _ in range(20):
            await scu.create()
        assoc = scu.association
        ctx = assoc.context_for(UPS_PULL)
        rq = CFindRQ(
            assoc.new_message_id(),
            UPS_PULL,
            dataset=encode_dataset(Dataset(), ctx.transfer_syntax),
        )
        # C-FIND-RQ and C-CANCEL-RQ back to back, so the SCP reads both before it
        # has sent a single match: the outcome does not depend on timing.
        pending = assoc._submit(rq, ctx.context_id, stream=True)
        assoc._send_cancel(rq.message_id)
        final = await asyncio.wait_for(pending.future, 5.0)
        assert final.status == 0xFE00
        assert (await scu.echo()).status == 0
    assert scp.finds_cancelled == 1


# ----------------------------------------------------------------------------- config


def test_parse_ae_and_listen() -> None:
    assert parse_ae("WATCHER=127.0.0.1:11113") == RemoteAE("WATCHER", "127.0.0.1", 11113)
    assert parse_ae("V6=[::1]:104") == RemoteAE("V6", "::1", 104)
    assert parse_listen("UPSSCP@0.0.0.0:0", require_host=True) == ("UPSSCP", "0.0.0.0", 0)
    for bad in ("WATCHER", "=h:1", "A=h", "A=h:x", "A=h:70000", "A=h:0", "WAYTOOLONGAETITLE1=h:1"):
        with pytest.raises(ConfigError):
            parse_ae(bad)
    with pytest.raises(ConfigError):
        parse_listen("host:104", require_host=True)


def test_ae_files(tmp_path: Path) -> None:
    js = tmp_path / "aes.json"
    js.write_text('{"aes": {"A": "h1:1", "B": "h2:2"}}')
    ini = tmp_path / "aes.ini"
    ini.write_text("[aes]\nCaseKept = h3:3\nB = h4:4\n")
    assert [r.ae_title for r in load_ae_file(js)] == ["A", "B"]
    assert load_ae_file(ini)[0] == RemoteAE("CaseKept", "h3", 3)
    table = ae_table(["A=h9:9"], [js, ini])
    assert table["A"].port == 9 and table["B"].port == 4 and table["CaseKept"].port == 3
    bad = tmp_path / "bad.ini"
    bad.write_text("[other]\nx = 1\n")
    with pytest.raises(ConfigError):
        load_ae_file(bad)
    with pytest.raises(ConfigError):
        load_ae_file(tmp_path / "missing.json")
