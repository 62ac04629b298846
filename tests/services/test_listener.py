"""The UPS event listener library: negotiation, typed events, delivery guarantee, backpressure.

Our own requestor sends pipelined N-EVENT-REPORTs; pynetdicom (a peer we did not
write) sends them as a UPS SCP would, with and without SCP/SCU role selection.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from pydicom.dataset import Dataset

from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.messages import CEchoRQ, NEventReportRQ, NEventReportRSP
from ups.net.association import Association
from ups.net.config import AssociationConfig
from ups.net.errors import AssociationRejected
from ups.net.requestor import build_request, connect
from ups.pdu.items import RoleSelection
from ups.services.events import UPSEvent, event_type_name
from ups.services.listener import (
    EventListener,
    listen,
    serve_events,
)
from ups.services.settings import ListenerSettings
from ups.services.uids import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UPS_EVENT,
    UPS_EVENT_TRIAL,
    UPS_PUSH,
    UPS_PUSH_TRIAL,
    VERIFICATION,
    EventType,
)

pytestmark = pytest.mark.timeout(30)

IVR = IMPLICIT_VR_LITTLE_ENDIAN


def state_report(state: str = "IN PROGRESS", syntax: str = IVR) -> bytes:
    ds = Dataset()
    ds.ProcedureStepState = state
    ds.InputReadinessState = "READY"
    return encode_dataset(ds, syntax)


async def open_sender(
    port: int,
    *,
    called: str = "ME",
    calling: str = "SCP",
    window: int = 8,
    abstract: str = UPS_EVENT,
    syntaxes: Sequence[str] = (IVR,),
    roles: bool = True,
) -> Association:
    """A requestor like dcm4chee-arc: Event context, role selection SCU=0/SCP=1."""
    config = AssociationConfig(max_ops_invoked=window, response_timeout=20)
    role = [RoleSelection(abstract, False, True)] if roles else []
    rq = build_request(
        called, calling, [(abstract, tuple(syntaxes)), (VERIFICATION, (IVR,))], config, roles=role
    )
    return await connect("127.0.0.1", port, rq, config)


async def send_events(
    association: Association,
    iuids: Sequence[str],
    *,
    event_type: int = 1,
    sop_class: str = UPS_PUSH,
    abstract: str = UPS_EVENT,
    raw: bytes | None = None,
    on_response: Callable[[str, NEventReportRSP], None] | None = None,
) -> list[NEventReportRSP]:
    """Send one report per UID, as many outstanding as the window allows."""
    context = association.context_for(abstract)
    raw = state_report() if raw is None else raw

    async def one(iuid: str) -> NEventReportRSP:
        rq = NEventReportRQ(association.new_message_id(), sop_class, iuid, event_type, raw)
        rsp = await association.request(rq, context.context_id)
        assert isinstance(rsp, NEventReportRSP)
        if on_response is not None:
            on_response(iuid, rsp)
        return rsp

    return list(await asyncio.gather(*(one(iuid) for iuid in iuids)))


async def collect(listener: EventListener, n: int) -> list[UPSEvent]:
    got: list[UPSEvent] = []
    async for event in listener:
        got.append(event)
        if len(got) == n:
            break
    return got


def test_event_type_names() -> None:
    assert event_type_name(1) == "UPS State Report"
    assert event_type_name(5) == "UPS Assigned"
    assert event_type_name(9) == "Event Type 9"


# ------------------------------------------------------------------------ delivery


async def test_pipelined_events_arrive_once_in_order_intact() -> None:
    async with listen("ME@127.0.0.1:0", settings=ListenerSettings(window=16)) as listener:
        sender = await open_sender(listener.port, window=16)
        assert sender.negotiated is not None
        assert sender.negotiated.max_ops_local_invokes == 16
        iuids = [f"1.2.826.0.1.{i}" for i in range(300)]
        consumer = asyncio.create_task(collect(listener, len(iuids)))
        responses = await send_events(sender, iuids)
        events = await consumer
        await sender.release()
    assert [e.iuid for e in events] == iuids
    assert [e.message_id for e in events] == sorted(e.message_id for e in events)
    assert {r.status for r in responses} == {0}
    rsp = responses[0]
    assert rsp.affected_sop_class_uid == UPS_PUSH
    assert rsp.affected_sop_instance_uid == iuids[0]
    assert rsp.event_type_id == 1
    first = events[0]
    assert first.event_type is EventType.UPS_STATE_REPORT
    assert (first.calling_aet, first.called_aet) == ("SCP", "ME")
    assert first.sop_class_uid == UPS_PUSH and first.family == "final"
    assert first.raw_dataset is not None and not first.raw_dataset.is_decoded
    assert first.dataset.ProcedureStepState == "IN PROGRESS"
    assert first.received > 0 and first.peer is not None
    assert listener.stats.events == 300 and listener.stats.associations_total == 1


async def test_concurrent_associations_keep_order_per_association() -> None:
    async with listen("ME@127.0.0.1:0") as listener:
        senders = [await open_sender(listener.port, calling=f"SCP{i}") for i in range(4)]
        iuids = {f"SCP{i}": [f"1.2.{i}.{n}" for n in range(150)] for i in range(4)}
        consumer = asyncio.create_task(collect(listener, 600))
        await asyncio.gather(*(send_events(s, iuids[f"SCP{i}"]) for i, s in enumerate(senders)))
        events = await consumer
        assert listener.stats.associations_open == 4
        await asyncio.gather(*(s.release() for s in senders))
    for aet, expected in iuids.items():
        assert [e.iuid for e in events if e.calling_aet == aet] == expected


async def test_trial_uids_and_explicit_vr() -> None:
    raw = state_report("SCHEDULED", EXPLICIT_VR_LITTLE_ENDIAN)
    async with listen(("127.0.0.1", 0), "ME") as listener:
        sender = await open_sender(
            listener.port, abstract=UPS_EVENT_TRIAL, syntaxes=(EXPLICIT_VR_LITTLE_ENDIAN,)
        )
        consumer = asyncio.create_task(collect(listener, 1))
        [rsp] = await send_events(
            sender, ["1.2.3"], sop_class=UPS_PUSH_TRIAL, abstract=UPS_EVENT_TRIAL, raw=raw
        )
        [event] = await consumer
        await sender.release()
    assert rsp.status == 0
    assert event.family == "trial" and event.context_sop_class_uid == UPS_EVENT_TRIAL
    assert event.dataset.ProcedureStepState == "SCHEDULED"


async def test_role_selection_is_answered_as_dcm4chee_arc_needs() -> None:
    async with listen("ME@127.0.0.1:0") as listener:
        with_roles = await open_sender(listener.port, roles=True)
        without = await open_sender(listener.port, roles=False)
        ctx = with_roles.context_for(UPS_EVENT)
        assert (ctx.requestor_scu, ctx.requestor_scp) == (False, True)
        plain = without.context_for(UPS_EVENT)
        assert (plain.requestor_scu, plain.requestor_scp) == (True, False)
        consumer = asyncio.create_task(collect(listener, 2))
        await send_events(with_roles, ["1.1"])
        await send_events(without, ["1.2"])
        assert len(await consumer) == 2
        echo = await without.request(CEchoRQ(without.new_message_id(), VERIFICATION), 3)
        assert echo.status == 0
        await with_roles.release()
        await without.release()


async def test_unknown_event_type_and_sop_class_are_refused() -> None:
    async with listen("ME@127.0.0.1:0") as listener:
        sender = await open_sender(listener.port)
        [bad_type] = await send_events(sender, ["1.1"], event_type=6)
        [bad_class] = await send_events(sender, ["1.2"], sop_class="1.2.840.10008.5.1.4.1.1.2")
        consumer = asyncio.create_task(collect(listener, 1))
        [good] = await send_events(sender, ["1.3"])
        [event] = await consumer
        await sender.release()
    assert bad_type.status == 0x0113 and bad_type.event_type_id == 6
    assert bad_class.status == 0x0118
    assert good.status == 0 and event.iuid == "1.3"
    assert listener.stats.refused == 2


async def test_called_ae_title_is_checked() -> None:
    async with listen("ME@127.0.0.1:0") as listener:
        with pytest.raises(AssociationRejected) as info:
            await open_sender(listener.port, called="OTHER")
        assert "called-AE-title-not-recognized" in str(info.value)
    async with listen(
        "ME@127.0.0.1:0", settings=ListenerSettings(accept_any_called_ae=True)
    ) as listener:
        sender = await open_sender(listener.port, called="OTHER")
        consumer = asyncio.create_task(collect(listener, 1))
        await send_events(sender, ["1.1"])
        [event] = await consumer
        assert event.called_aet == "OTHER"
        await sender.release()


# ------------------------------------------------------------------------ callbacks


# What each UPS (by its instance UID) makes the callbacks below do.
A, BOOM, WARN, B, SLOW, X, Y = (f"1.2.826.0.1.{n}" for n in range(1, 8))


async def test_sync_callback_statuses_and_failures() -> None:
    seen: list[str] = []

    def callback(event: UPSEvent) -> int | None:
        seen.append(event.iuid)
        if event.iuid == BOOM:
            raise RuntimeError("consumer broke")
        return 0xB304 if event.iuid == WARN else None

    async with serve_events(callback, "ME@127.0.0.1:0") as listener:
        sender = await open_sender(listener.port, window=1)
        responses = await send_events(sender, [A, BOOM, WARN, B])
        await sender.release()
    assert [r.status for r in responses] == [0, 0x0110, 0xB304, 0]
    assert responses[1].error_comment is not None and "consumer broke" in responses[1].error_comment
    assert seen == [A, BOOM, WARN, B]
    assert (listener.stats.events, listener.stats.failed) == (3, 1)


async def test_async_callback_answers_after_it_returns() -> None:
    done: set[str] = set()
    release = asyncio.Event()

    async def callback(event: UPSEvent) -> None:
        if event.iuid == SLOW:
            await release.wait()
        if event.iuid == BOOM:
            raise ValueError("no")
        done.add(event.iuid)

    def check(iuid: str, rsp: NEventReportRSP) -> None:
        if rsp.status == 0:
            assert iuid in done  # the RSP left only after the callback returned

    async with serve_events(callback, "ME@127.0.0.1:0") as listener:
        sender = await open_sender(listener.port)
        task = asyncio.create_task(send_events(sender, [SLOW, X, BOOM, Y], on_response=check))
        await asyncio.sleep(0)
        assert not task.done()
        release.set()
        responses = await task
        await sender.release()
    assert [r.status for r in responses] == [0, 0, 0x0110, 0]


@pytest.mark.parametrize("iuid", ["abc", "1..2", "1.2\x003", "1." + "2" * 63, ""])
async def test_an_event_about_a_malformed_instance_uid_is_refused_0117(iuid: str) -> None:
    """The UPS it names cannot be addressed; the sender hears so (issue 12), the consumer
    never sees it, and the association goes on."""
    seen: list[str] = []
    async with serve_events(lambda event: seen.append(event.iuid), "ME@127.0.0.1:0") as listener:
        sender = await open_sender(listener.port, window=1)
        responses = await send_events(sender, [iuid, A])
        await sender.release()
    assert [r.status for r in responses] == [0x0117, 0]
    comment = responses[0].error_comment
    assert comment is not None and comment.startswith("(0000,1000) ") and len(comment) <= 64
    assert seen == [A] and listener.stats.refused == 1


# ------------------------------------------------------------------------ backpressure


async def test_slow_consumer_gets_backpressure_not_loss() -> None:
    """buffer=4: the queue stays bounded, reading pauses, and no event is lost."""
    taken: set[str] = set()
    high_water = 0

    def check(iuid: str, rsp: NEventReportRSP) -> None:
        assert rsp.status == 0
        assert iuid in taken  # Success only for what the consumer has taken

    async with listen("ME@127.0.0.1:0", settings=ListenerSettings(buffer=4, window=8)) as listener:
        senders = [await open_sender(listener.port, calling=f"S{i}", window=8) for i in range(3)]
        iuids = [[f"1.{i}.{n}" for n in range(60)] for i in range(3)]
        sending = asyncio.gather(
            *(send_events(s, u, on_response=check) for s, u in zip(senders, iuids, strict=True))
        )
        got: list[UPSEvent] = []
        async for event in listener:
            high_water = max(high_water, listener.queued)
            taken.add(event.iuid)
            got.append(event)
            await asyncio.sleep(0.001)  # the deliberately slow consumer
            if len(got) == 180:
                break
        await sending
        await asyncio.gather(*(s.release() for s in senders))
    assert sorted(e.iuid for e in got) == sorted(u for batch in iuids for u in batch)
    # Bounded: the buffer plus at most one window per association that was mid-read.
    assert high_water <= 4 + 3 * 8


# ------------------------------------------------------------------------ shutdown


async def test_graceful_stop_delivers_what_was_read_and_ends_iteration() -> None:
    acked: list[str] = []
    got: list[str] = []
    listener = await listen("ME@127.0.0.1:0").start()
    sender = await open_sender(listener.port, window=8)

    async def consume() -> None:
        async for event in listener:
            got.append(event.iuid)
            if len(got) == 50:
                listener.stop()

    def record(iuid: str, rsp: NEventReportRSP) -> None:
        if rsp.status == 0:
            acked.append(iuid)

    consumer = asyncio.create_task(consume())
    results = await asyncio.gather(
        send_events(sender, [f"1.{n}" for n in range(400)], on_response=record),
        return_exceptions=True,
    )
    await asyncio.wait_for(consumer, 10)
    await listener.wait_closed()
    assert isinstance(results[0], Exception) or len(acked) == 400
    assert set(acked) <= set(got) and len(got) == len(set(got))
    assert 50 <= len(acked)
    assert sender.closed.done()


async def test_close_fails_events_nobody_took() -> None:
    async with listen("ME@127.0.0.1:0", settings=ListenerSettings(buffer=100)) as listener:
        sender = await open_sender(listener.port, window=4)
        sending = asyncio.create_task(send_events(sender, ["1", "2", "3"]))
        while listener.queued < 3:
            await asyncio.sleep(0.01)
    responses = await sending
    assert {r.status for r in responses} == {0x0110}
    await sender.wait_closed()


# ------------------------------------------------------------------------ pynetdicom


@pytest.fixture
def pyn_race_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work around a pynetdicom requestor race, not ours.

    ``send_n_event_report`` pauses pynetdicom's reactor thread with a flag handshake
    that can pass while the reactor is still running; a response that comes back
    quickly (ours do) is then taken by the reactor as an "unexpected" request and
    dropped, and the sender waits out its DIMSE timeout. Put such a response back on
    the queue the sender reads from.
    """
    from pynetdicom import association as pyn_association

    original = pyn_association.Association._serve_request

    def serve(self: Any, msg: Any, context_id: int) -> None:
        if not msg.is_valid_request and msg.is_valid_response:
            self.dimse.msg_queue.put((context_id, msg))
            return
        original(self, msg, context_id)

    monkeypatch.setattr(pyn_association.Association, "_serve_request", serve)


def _pyn_send(port: int, iuids: Sequence[str], *, roles: bool, sop_class: str) -> list[int]:
    """pynetdicom as a UPS SCP sending N-EVENT-REPORTs (runs in a thread)."""
    from pynetdicom import AE, build_role, evt

    def nodelay(event: Any) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    ae = AE(ae_title="PYNSCP")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(UPS_EVENT, [IVR])
    ext: list[Any] = [build_role(UPS_EVENT, scu_role=False, scp_role=True)] if roles else []
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="ME",
        ext_neg=ext,
        evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)],
    )
    assert assoc.is_established
    statuses = []
    try:
        for iuid in iuids:
            info = Dataset()
            info.ProcedureStepState = "COMPLETED"
            info.InputReadinessState = "READY"
            status, _ = assoc.send_n_event_report(info, 1, sop_class, iuid)
            statuses.append(int(status.Status))
    finally:
        assoc.release()
    return statuses


@pytest.mark.interop
@pytest.mark.parametrize(("roles", "sop_class"), [(True, UPS_PUSH), (False, UPS_EVENT)])
@pytest.mark.usefixtures("pyn_race_guard")
async def test_pynetdicom_sender_one_association(roles: bool, sop_class: str) -> None:
    async with listen("ME@127.0.0.1:0") as listener:
        iuids = [f"2.25.{n}" for n in range(20)]
        consumer = asyncio.create_task(collect(listener, 20))
        statuses = await asyncio.to_thread(
            _pyn_send, listener.port, iuids, roles=roles, sop_class=sop_class
        )
        events = await consumer
    assert statuses == [0] * 20
    assert [e.iuid for e in events] == iuids
    assert all(e.calling_aet == "PYNSCP" and e.sop_class_uid == sop_class for e in events)
    assert events[-1].dataset.ProcedureStepState == "COMPLETED"


@pytest.mark.interop
@pytest.mark.usefixtures("pyn_race_guard")
async def test_pynetdicom_senders_concurrent_associations() -> None:
    received: dict[str, list[str]] = {}
    lock = threading.Lock()

    def callback(event: UPSEvent) -> None:
        with lock:
            received.setdefault(event.iuid.rsplit(".", 1)[0], []).append(event.iuid)

    async with serve_events(callback, "ME@127.0.0.1:0") as listener:
        batches = {f"2.25.{a}": [f"2.25.{a}.{n}" for n in range(15)] for a in range(3)}
        statuses = await asyncio.gather(
            *(
                asyncio.to_thread(_pyn_send, listener.port, b, roles=True, sop_class=UPS_PUSH)
                for b in batches.values()
            )
        )
    assert all(s == [0] * 15 for s in statuses)
    assert received == batches


def test_lazy_dataset_is_not_decoded_until_read() -> None:
    raw = state_report()
    assert decode_dataset(raw, IVR).ProcedureStepState == "IN PROGRESS"
    event = UPSEvent(3, "1.2", UPS_PUSH, "A", "B", 0.0)
    assert event.name == "UPS Progress Report" and not event.has_dataset
    assert len(event.dataset) == 0
