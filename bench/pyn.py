"""pynetdicom peers, used only through its public API, measured in the same run as ours.

Servers return ``(port, stop)``; clients are blocking and return the same result shape as
the raw sender: ``requests``, ``elapsed_s``, ``latencies_ns``, ``bad_status``. Each runs
inside a bench worker process (see ``bench.worker``), never in the orchestrator.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from bench import rawpdu

Stop = Callable[[], None]
Result = dict[str, object]

# pynetdicom's DEBUG/INFO logging would dominate the figures; keep it quiet.
_QUIET = False


def _quiet() -> None:
    global _QUIET
    if not _QUIET:
        import logging

        logging.getLogger("pynetdicom").setLevel(logging.ERROR)
        _QUIET = True


def _state_report() -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.ProcedureStepState = "IN PROGRESS"
    ds.InputReadinessState = "READY"
    return ds


def _workitem() -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.InputReadinessState = "READY"
    ds.ProcedureStepLabel = "Benchmark workitem"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-0001"
    return ds


def _nodelay_handlers(nodelay: bool) -> list[tuple[Any, Callable[[Any], None]]]:
    """pynetdicom leaves Nagle on; with ``nodelay`` set TCP_NODELAY from EVT_CONN_OPEN.

    Nagle matters for pynetdicom because it writes command and data set as two PDUs: the
    second waits for the peer's delayed ACK (~40 ms on Linux) unless TCP_NODELAY is set.
    """
    if not nodelay:
        return []
    import socket

    from pynetdicom import evt

    def on_open(event: Any) -> None:
        sock = event.assoc.dul.socket.socket
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return [(evt.EVT_CONN_OPEN, on_open)]


def _ae(title: str, max_assocs: int = 64) -> Any:
    from pynetdicom import AE

    _quiet()
    ae = AE(ae_title=title)
    ae.maximum_associations = max_assocs
    ae.acse_timeout = ae.dimse_timeout = 60
    ae.network_timeout = None  # idle associations (scenario 6) must stay open; runs are bounded
    return ae


# -- servers ------------------------------------------------------------------------------------


def serve_events(
    counter: itertools.count[int],
    max_assocs: int = 64,
    nodelay: bool = True,
    verification: bool = False,
) -> tuple[int, Stop]:
    """UPS Event SOP Class SCP that answers every N-EVENT-REPORT with Success.

    ``verification`` also accepts C-ECHO (pynetdicom's default handler answers Success),
    as our listener does, for the DCMTK ``echoscu`` rows of scenario 10.
    """
    from pynetdicom import evt
    from pynetdicom.sop_class import (
        UnifiedProcedureStepEvent,
        Verification,
    )

    def on_event(event: Any) -> tuple[int, None]:
        next(counter)
        return 0x0000, None

    ae = _ae("PYN-LISTENER", max_assocs)
    ae.add_supported_context(UnifiedProcedureStepEvent, rawpdu.IMPLICIT_VR_LE)
    if verification:
        ae.add_supported_context(Verification)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_event), *_nodelay_handlers(nodelay)],
    )
    return int(server.server_address[1]), server.shutdown


def serve_echo_nget(
    counter: itertools.count[int], max_assocs: int = 64, nodelay: bool = True
) -> tuple[int, Stop]:
    """Verification SCP plus UPS Pull N-GET SCP returning a small workitem."""
    from pynetdicom import evt
    from pynetdicom.sop_class import (
        UnifiedProcedureStepPull,
        Verification,
    )

    workitem = _workitem()

    def on_echo(event: Any) -> int:
        next(counter)
        return 0x0000

    def on_get(event: Any) -> tuple[int, Any]:
        next(counter)
        return 0x0000, workitem

    ae = _ae("PYN-SCP", max_assocs)
    ae.add_supported_context(Verification, rawpdu.IMPLICIT_VR_LE)
    ae.add_supported_context(UnifiedProcedureStepPull, rawpdu.IMPLICIT_VR_LE)
    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[
            (evt.EVT_C_ECHO, on_echo),
            (evt.EVT_N_GET, on_get),
            *_nodelay_handlers(nodelay),
        ],
    )
    return int(server.server_address[1]), server.shutdown


# -- clients ------------------------------------------------------------------------------------


def _associate(port: int, contexts: list[str], nodelay: bool) -> Any:
    ae = _ae("PYN-SCU")
    for uid in contexts:
        ae.add_requested_context(uid, rawpdu.IMPLICIT_VR_LE)
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="ANY-SCP", evt_handlers=_nodelay_handlers(nodelay)
    )
    if not assoc.is_established:
        raise RuntimeError("pynetdicom could not establish the association")
    return assoc


def _timed_loop(total: int, warmup: int, call: Callable[[int], int]) -> Result:
    latencies: list[int] = []
    bad = 0
    for i in range(warmup):
        call(i + 1)
    t0 = time.perf_counter_ns()
    for i in range(total):
        s = time.perf_counter_ns()
        status = call((warmup + i) % 65535 + 1)
        latencies.append(time.perf_counter_ns() - s)
        bad += status != 0
    t1 = time.perf_counter_ns()
    return {
        "requests": total,
        "elapsed_s": (t1 - t0) / 1e9,
        "latencies_ns": latencies,
        "bad_status": bad,
    }


def _status(rsp: Any) -> int:
    return int(getattr(rsp, "Status", 0xFFFF)) if rsp is not None else 0xFFFF


def send_events(port: int, total: int, warmup: int, nodelay: bool = True) -> Result:
    """N-EVENT-REPORT (UPS State Report) in a loop, each waiting for its response."""
    from pynetdicom.sop_class import UnifiedProcedureStepEvent

    ds = _state_report()
    assoc = _associate(port, [UnifiedProcedureStepEvent], nodelay)
    try:
        return _timed_loop(
            total,
            warmup,
            lambda mid: _status(
                assoc.send_n_event_report(
                    ds, 1, UnifiedProcedureStepEvent, rawpdu.SAMPLE_WORKITEM_UID, msg_id=mid
                )[0]
            ),
        )
    finally:
        assoc.release()


def send_echoes(port: int, total: int, warmup: int, nodelay: bool = True) -> Result:
    from pynetdicom.sop_class import Verification

    assoc = _associate(port, [Verification], nodelay)
    try:
        return _timed_loop(total, warmup, lambda mid: _status(assoc.send_c_echo(msg_id=mid)))
    finally:
        assoc.release()


def send_ngets(port: int, total: int, warmup: int, nodelay: bool = True) -> Result:
    from pydicom.tag import Tag
    from pynetdicom.sop_class import UnifiedProcedureStepPull

    tags = [Tag("ProcedureStepState"), Tag("InputReadinessState"), Tag("ProcedureStepLabel")]
    assoc = _associate(port, [UnifiedProcedureStepPull], nodelay)
    try:
        return _timed_loop(
            total,
            warmup,
            lambda mid: _status(
                assoc.send_n_get(
                    tags, UnifiedProcedureStepPull, rawpdu.SAMPLE_WORKITEM_UID, msg_id=mid
                )[0]
            ),
        )
    finally:
        assoc.release()


def open_release(port: int, total: int, warmup: int, nodelay: bool = True) -> Result:
    """Association open + release, one after the other."""
    from pynetdicom.sop_class import Verification

    ae = _ae("PYN-SCU")
    ae.add_requested_context(Verification, rawpdu.IMPLICIT_VR_LE)

    handlers = _nodelay_handlers(nodelay)

    def once(_: int) -> int:
        assoc = ae.associate("127.0.0.1", port, ae_title="ANY-SCP", evt_handlers=handlers)
        ok = assoc.is_established
        assoc.release()
        return 0 if ok else 1

    return _timed_loop(total, warmup, once)


# -- codec (scenario 8) -----------------------------------------------------------------------


def codec_event(iterations: int) -> Result:
    """Encode one N-EVENT-REPORT-RQ to P-DATA-TF bytes and decode it back, pynetdicom's way.

    Encode: primitive -> DIMSE message -> P-DATA primitives -> P-DATA-TF PDU bytes (the data
    set is encoded by pydicom, as pynetdicom's ``send_n_event_report`` does). Decode: PDU
    bytes -> P-DATA-TF -> P-DATA -> DIMSE message -> primitive (data set left encoded).
    pynetdicom sends command and data set in separate P-DATA-TF PDUs, so one event is two.
    """
    from io import BytesIO

    from pynetdicom.dimse_messages import N_EVENT_REPORT_RQ, DIMSEMessage
    from pynetdicom.dimse_primitives import N_EVENT_REPORT
    from pynetdicom.dsutils import encode
    from pynetdicom.pdu import P_DATA_TF

    _quiet()
    ds = _state_report()

    def encode_one() -> list[bytes]:
        prim = N_EVENT_REPORT()
        prim.MessageID = 1
        prim.AffectedSOPClassUID = rawpdu.UPS_PUSH
        prim.AffectedSOPInstanceUID = rawpdu.SAMPLE_WORKITEM_UID
        prim.EventTypeID = 1
        prim.EventInformation = BytesIO(encode(ds, True, True) or b"")
        msg = N_EVENT_REPORT_RQ()
        msg.primitive_to_message(prim)
        out = []
        for p_data in msg.encode_msg(1, 16382):
            pdu = P_DATA_TF()
            pdu.from_primitive(p_data)
            out.append(pdu.encode())
        return out

    def decode_one(pdus: list[bytes]) -> Any:
        msg = DIMSEMessage()
        for raw in pdus:
            pdu = P_DATA_TF()
            pdu.decode(raw)
            if msg.decode_msg(pdu.to_primitive()):
                break
        return msg.message_to_primitive()

    encoded = encode_one()
    prim = decode_one(encoded)
    if prim.MessageID != 1 or prim.EventTypeID != 1:
        raise RuntimeError("pynetdicom codec round trip lost fields")
    return _time_codec(
        iterations, encode_one, lambda: decode_one(encoded), sum(len(b) for b in encoded)
    )


def _time_codec(
    iterations: int, enc: Callable[[], object], dec: Callable[[], object], size: int
) -> Result:
    import timeit

    t_enc = min(timeit.repeat(enc, number=iterations, repeat=3)) / iterations
    t_dec = min(timeit.repeat(dec, number=iterations, repeat=3)) / iterations
    return {
        "encode_us": t_enc * 1e6,
        "decode_us": t_dec * 1e6,
        "roundtrip_us": (t_enc + t_dec) * 1e6,
        "bytes": size,
    }
