"""The eight adapters that put our stack (``ups``) into the benchmark's roles.

Contracts are in ``bench.ours``' docstring; ``bench.ours`` imports this module lazily, so a
worker that only runs pynetdicom or the ceiling never imports ``ups``. Everything here
uses the public API a user would: ``ups.serve_events`` and ``ups.listen`` for the listener,
``ups.net.server.serve`` for the C-ECHO/N-GET SCP, ``ups.net.requestor.connect`` and
``Association.request`` for every requestor, and the sans-I/O ``ups.pdu``/``ups.dimse``
pieces for the codec.

Choices that bear on the figures:

* The listener is ``serve_events`` with a plain (sync) callback: it runs inline in the
  network callback and the N-EVENT-REPORT-RSP leaves when it returns, which is the
  listener's delivery guarantee (PS3.4 CC.2.4: acknowledged means delivered) at the
  lowest cost the library offers. The iterator form (``listen``) adds one future and one
  task switch per event; ``event_iterator`` measures it (scenario 9).
* Data sets are pre-encoded bytes (``bench.rawpdu.state_report_dataset``, and the N-GET
  workitem once at start-up), as DESIGN.md's hot path prescribes: "encode outgoing ones
  once". pynetdicom's sender encodes its pydicom Dataset per event; that is its API.
* A window of W is W coroutines each awaiting ``Association.request`` in turn, over an
  association that negotiated ``max_ops_invoked=W``: the shape ``dcmups bench`` uses.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import timeit
from collections.abc import Awaitable, Callable

import ups
from bench import rawpdu
from ups.dimse.datasets import encode_dataset
from ups.dimse.fragment import Reassembler, encode_pdata
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    NEventReportRQ,
    NGetRQ,
    NGetRSP,
    Request,
    Response,
    encode_command,
)
from ups.net.association import Association, HandlerResult, RequestContext
from ups.net.config import AssociationConfig
from ups.net.requestor import build_request, connect
from ups.net.server import serve
from ups.pdu.framer import Framer
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.pdu.pdus import PDataTF

Result = dict[str, object]
Stop = Callable[[], Awaitable[None]]

HOST = "127.0.0.1"
CALLED = "ANY-SCP"
CALLING = "BENCH-OURS"
UPS_PULL = "1.2.840.10008.5.1.4.34.6.3"
IMPLICIT = (rawpdu.IMPLICIT_VR_LE,)
PDU_LENGTH = 16384
# Tags pynetdicom's N-GET asks for: ProcedureStepState, InputReadinessState, label.
NGET_TAGS = (0x00741000, 0x00404041, 0x00741204)


# -- servers -------------------------------------------------------------------------------------


async def event_listener(
    counter: itertools.count[int], window: int, *, port: int = 0, reuse_port: bool = False
) -> tuple[int, Stop]:
    """``serve_events`` with a sync callback: Success leaves once the callback returned.

    ``reuse_port`` binds with SO_REUSEPORT so that several worker processes can share
    ``port`` (the ``-L --workers N`` layout; scenario 3's two-worker row).
    """

    def on_event(event: ups.UPSEvent) -> None:
        next(counter)

    listener = ups.serve_events(
        on_event,
        (HOST, port),
        "BENCH-LISTENER",
        ups.ListenerSettings(window=window, accept_any_called_ae=True, reuse_port=reuse_port),
    )
    await listener.start()

    async def stop() -> None:
        await listener.close(grace=2.0)

    return listener.port, stop


async def event_iterator(
    counter: itertools.count[int], window: int, *, port: int = 0, reuse_port: bool = False
) -> tuple[int, Stop]:
    """The library consumer as its docstring shows it, in a task of its own::

        async with listen(...) as events:
            async for event in events:
                next(counter)

    Success leaves once the iterator handed the event over (taken means delivered).
    """
    loop = asyncio.get_running_loop()
    listener = ups.listen(
        (HOST, port),
        "BENCH-LISTENER",
        ups.ListenerSettings(window=window, accept_any_called_ae=True, reuse_port=reuse_port),
    )
    started: asyncio.Future[None] = loop.create_future()

    async def consume() -> None:
        async with listener as events:
            started.set_result(None)
            async for _ in events:
                next(counter)

    task = loop.create_task(consume())
    await asyncio.wait((task, started), timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raises why it ended
        raise RuntimeError("the listen() consumer ended before it started")
    if not started.done():
        task.cancel()
        raise RuntimeError("listen() did not start within 30 s")

    async def stop() -> None:
        listener.stop(grace=2.0)
        await asyncio.wait_for(task, 30)

    return listener.port, stop


def _workitem_bytes() -> bytes:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ProcedureStepLabel = "Benchmark workitem"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-0001"
    return encode_dataset(ds, rawpdu.IMPLICIT_VR_LE)


async def echo_nget_scp(counter: itertools.count[int]) -> tuple[int, Stop]:
    """Verification SCP (C-ECHO) and UPS Pull N-GET SCP answering a pre-encoded workitem."""
    workitem = _workitem_bytes()

    def on_echo(request: Request, ctx: RequestContext) -> HandlerResult:
        assert type(request) is CEchoRQ
        next(counter)
        return CEchoRSP(request.message_id, 0x0000, request.affected_sop_class_uid)

    def on_get(request: Request, ctx: RequestContext) -> HandlerResult:
        assert type(request) is NGetRQ
        next(counter)
        return NGetRSP(
            request.message_id,
            0x0000,
            request.requested_sop_class_uid,
            request.requested_sop_instance_uid,
            dataset=workitem,
        )

    policy = AcceptorPolicy(
        ae_titles=None,
        supported={rawpdu.VERIFICATION: SyntaxSupport(IMPLICIT), UPS_PULL: SyntaxSupport(IMPLICIT)},
        max_pdata_length=PDU_LENGTH,
        implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
    )
    server = await serve(HOST, 0, policy, handlers={rawpdu.VERIFICATION: on_echo, UPS_PULL: on_get})

    async def stop() -> None:
        await server.close(grace=2.0)

    return server.port, stop


# -- requestors ----------------------------------------------------------------------------------


async def _open(port: int, abstract: str, window: int = 1) -> tuple[Association, int]:
    config = AssociationConfig(max_ops_invoked=window) if window > 1 else AssociationConfig()
    rq = build_request(CALLED, CALLING, [(abstract, IMPLICIT)], config)
    association = await connect(HOST, port, rq, config)
    return association, association.context_for(abstract).context_id


async def _run(
    port: int,
    abstract: str,
    total: int,
    warmup: int,
    window: int,
    make: Callable[[int], Request],
) -> Result:
    """``warmup`` untimed then ``total`` timed requests, ``window`` outstanding at a time."""
    association, cid = await _open(port, abstract, window)
    latencies: list[int] = []
    bad = 0
    clock = time.perf_counter_ns
    request = association.request
    new_id = association.new_message_id

    async def lane(budget: list[int], timed: bool) -> None:
        nonlocal bad
        while budget[0] > 0:
            budget[0] -= 1
            rq = make(new_id())
            t0 = clock()
            response: Response = await request(rq, cid)
            if timed:
                latencies.append(clock() - t0)
            if response.status:
                bad += 1

    try:
        lanes = max(1, window)
        budget = [warmup]
        await asyncio.gather(*(lane(budget, False) for _ in range(lanes)))
        budget = [total]
        t_start = clock()
        await asyncio.gather(*(lane(budget, True) for _ in range(lanes)))
        t_end = clock()
    except BaseException:
        association.abort()
        raise
    await association.release()
    return {
        "requests": total,
        "elapsed_s": (t_end - t_start) / 1e9,
        "latencies_ns": latencies,
        "bad_status": bad,
    }


async def event_sender(port: int, total: int, warmup: int, window: int) -> Result:
    """UPS State Reports (pre-encoded event information) on one association."""
    info = rawpdu.state_report_dataset()

    def make(mid: int) -> Request:
        return NEventReportRQ(mid, rawpdu.UPS_PUSH, rawpdu.SAMPLE_WORKITEM_UID, 1, info)

    return await _run(port, rawpdu.UPS_EVENT, total, warmup, window, make)


async def echo_scu(port: int, total: int, warmup: int) -> Result:
    return await _run(port, rawpdu.VERIFICATION, total, warmup, 1, CEchoRQ)


async def nget_scu(port: int, total: int, warmup: int) -> Result:
    def make(mid: int) -> Request:
        return NGetRQ(mid, UPS_PULL, rawpdu.SAMPLE_WORKITEM_UID, NGET_TAGS)

    return await _run(port, UPS_PULL, total, warmup, 1, make)


async def open_release(port: int, total: int, warmup: int) -> Result:
    """Open an association (Verification), release it; one after the other."""
    config = AssociationConfig()
    rq = build_request(CALLED, CALLING, [(rawpdu.VERIFICATION, IMPLICIT)], config)
    latencies: list[int] = []
    clock = time.perf_counter_ns
    t_start = 0
    for i in range(warmup + total):
        if i == warmup:
            t_start = clock()
        t0 = clock()
        association = await connect(HOST, port, rq, config)
        await association.release()
        if i >= warmup:
            latencies.append(clock() - t0)
    t_end = clock()
    return {
        "requests": total,
        "elapsed_s": (t_end - t_start) / 1e9,
        "latencies_ns": latencies,
        "bad_status": 0,
    }


# -- codec (scenario 8) --------------------------------------------------------------------------


def codec(iterations: int) -> dict[str, float]:
    """Encode one N-EVENT-REPORT-RQ to P-DATA-TF bytes and decode it back to a message.

    Encode: message -> command set (``encode_command``) -> one P-DATA-TF with both PDVs
    (``encode_pdata``). Decode: bytes -> ``Framer`` -> ``PDataTF`` -> ``Reassembler`` ->
    ``NEventReportRQ`` with the data set left as raw bytes (DESIGN.md: data sets decode
    lazily, when someone reads them). One framer and one reassembler are reused across
    iterations, as on an association.
    """
    info = rawpdu.state_report_dataset()
    framer = Framer(PDU_LENGTH)
    reassembler = Reassembler({1})

    def encode_one() -> bytes:
        message = NEventReportRQ(1, rawpdu.UPS_PUSH, rawpdu.SAMPLE_WORKITEM_UID, 1, info)
        return encode_pdata(1, encode_command(message), message.dataset, PDU_LENGTH)

    def decode_one(data: bytes) -> object:
        framer.feed(data)
        pdu = framer.next_pdu()
        assert type(pdu) is PDataTF
        ((_, message),) = reassembler.feed(pdu)
        return message

    encoded = encode_one()
    message = decode_one(encoded)
    if not (
        type(message) is NEventReportRQ
        and message.message_id == 1
        and message.event_type_id == 1
        and message.dataset == info
    ):
        raise RuntimeError(f"our codec round trip lost fields: {message!r}")
    t_enc = min(timeit.repeat(encode_one, number=iterations, repeat=3)) / iterations
    t_dec = (
        min(timeit.repeat(lambda: decode_one(encoded), number=iterations, repeat=3)) / iterations
    )
    return {
        "encode_us": t_enc * 1e6,
        "decode_us": t_dec * 1e6,
        "roundtrip_us": (t_enc + t_dec) * 1e6,
        "bytes": float(len(encoded)),
    }
