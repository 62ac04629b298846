"""Interoperability with pynetdicom, a peer this project did not write, both ways.

pynetdicom runs in worker threads (it blocks); our side runs on the test's event loop.
Maximum PDU sizes are small on both sides so every data set travels in fragments.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset

from tests.net.conftest import (
    UPS_EVENT,
    UPS_PUSH,
    UPS_QUERY,
    UPS_WATCH,
    VERIFICATION,
    Net,
    make_config,
    make_policy,
)
from ups.dimse.datasets import IMPLICIT_VR_LITTLE_ENDIAN, decode_dataset, encode_dataset
from ups.dimse.messages import (
    CEchoRQ,
    CFindRQ,
    CFindRSP,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
)
from ups.net.association import Association, RequestContext
from ups.net.errors import AssociationAborted
from ups.pdu.items import UserIdentityRQ

pynetdicom = pytest.importorskip("pynetdicom")
from pynetdicom import AE, build_role, evt  # noqa: E402
from pynetdicom.pdu_primitives import UserIdentityNegotiation  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

IUID = "1.2.826.0.1.3680043.9.7433.3.1"
IMPLICIT = "1.2.840.10008.1.2"
UPS_CLASSES = (UPS_PUSH, UPS_WATCH, UPS_EVENT, UPS_QUERY)


def big_dataset(size: int = 2000) -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^John"
    ds.ProcedureStepLabel = "interop"
    ds.TextValue = "y" * size
    return ds


def raw(ds: Dataset) -> bytes:
    return encode_dataset(ds, IMPLICIT_VR_LITTLE_ENDIAN)


def read(data: bytes | None) -> Dataset:
    assert data is not None
    return decode_dataset(data, IMPLICIT_VR_LITTLE_ENDIAN)


# ------------------------------------------------------------------ pynetdicom requests


class OurSCP:
    """Handlers for our acceptor that record what pynetdicom sent."""

    def __init__(self) -> None:
        self.seen: list[Request] = []
        self.reports: list[asyncio.Task[Response]] = []

    def push(self, request: Request, ctx: RequestContext) -> Response:
        self.seen.append(request)
        if isinstance(request, NCreateRQ):
            return NCreateRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=request.dataset)
        if isinstance(request, NSetRQ):
            return NSetRSP(request.message_id, 0, UPS_PUSH, IUID)
        if isinstance(request, NGetRQ):
            return NGetRSP(request.message_id, 0, UPS_PUSH, IUID, dataset=raw(big_dataset(1500)))
        assert isinstance(request, NActionRQ)
        # Answer, then send an N-EVENT-REPORT the other way on the same association.
        self.reports.append(asyncio.ensure_future(self.report(ctx.association)))
        return NActionRSP(request.message_id, 0, UPS_PUSH, IUID, request.action_type_id)

    async def report(self, association: Association) -> Response:
        cid = association.context_for(UPS_EVENT).context_id
        rq = NEventReportRQ(
            association.new_message_id(), UPS_EVENT, IUID, 1, dataset=raw(big_dataset(900))
        )
        return await association.request(rq, cid)

    def event(self, request: Request, ctx: RequestContext) -> Response:
        self.seen.append(request)
        assert isinstance(request, NEventReportRQ)
        return NEventReportRSP(request.message_id, 0, UPS_EVENT, IUID, request.event_type_id)

    async def find(self, request: Request, ctx: RequestContext) -> AsyncIterator[Response]:
        self.seen.append(request)
        assert isinstance(request, CFindRQ)
        for n in range(3):
            match = big_dataset(300 + n)
            yield CFindRSP(request.message_id, 0xFF00, UPS_QUERY, dataset=raw(match))
        yield CFindRSP(request.message_id, 0x0000, UPS_QUERY)


def pynetdicom_scu(port: int, *, abort: bool = False) -> dict[str, Any]:
    """Everything pynetdicom does as requestor, in a worker thread."""
    out: dict[str, Any] = {}
    got_report = threading.Event()

    def on_report(event: Any) -> tuple[int, Dataset | None]:
        out["report"] = (event.request.EventTypeID, event.event_information.TextValue)
        got_report.set()
        return 0x0000, None

    ae = AE(ae_title="PYNSCU")
    ae.maximum_pdu_size = 128
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    for uid in (VERIFICATION, *UPS_CLASSES):
        ae.add_requested_context(uid, [IMPLICIT])
    identity = UserIdentityNegotiation()
    identity.user_identity_type = 2
    identity.primary_field = b"alice"
    identity.secondary_field = b"secret"
    identity.positive_response_requested = True
    role = build_role(UPS_EVENT, scu_role=True, scp_role=True)
    assoc = ae.associate(
        "127.0.0.1",
        port,
        ae_title="SCP",
        max_pdu=128,
        ext_neg=[role, identity],
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)],
    )
    try:
        assert assoc.is_established, "pynetdicom could not associate"
        out["max_length"] = assoc.acceptor.maximum_length
        out["identity"] = next(
            (
                item.server_response
                for item in assoc.acceptor.user_information
                if isinstance(item, UserIdentityNegotiation)
            ),
            None,
        )
        out["echo"] = assoc.send_c_echo().Status
        if abort:
            assoc.abort()
            return out
        status, attrs = assoc.send_n_create(big_dataset(), UPS_PUSH, IUID)
        out["create"] = (status.Status, attrs.TextValue if attrs else None)
        status, _ = assoc.send_n_set(big_dataset(1200), UPS_PUSH, IUID)
        out["set"] = status.Status
        status, attrs = assoc.send_n_get([0x00100010, 0x00741204], UPS_PUSH, IUID)
        out["get"] = (status.Status, len(attrs.TextValue) if attrs else None)
        status, _ = assoc.send_n_action(big_dataset(400), 1, UPS_PUSH, IUID)
        out["action"] = status.Status
        status, _ = assoc.send_n_event_report(big_dataset(700), 2, UPS_EVENT, IUID)
        out["event"] = status.Status
        out["find"] = [
            (status.Status, ident.TextValue if ident else None)
            for status, ident in assoc.send_c_find(big_dataset(10), UPS_QUERY)
        ]
        out["got_report"] = got_report.wait(10)
        assoc.release()
        out["released"] = assoc.is_released
    finally:
        if assoc.is_established:
            assoc.abort()
        ae.shutdown()
    return out


def verify(identity: UserIdentityRQ | None) -> bytes | bool:
    if identity is None or identity.primary_field != b"alice":
        return False
    return b"welcome-alice"


async def test_pynetdicom_requestor_against_our_acceptor(net: Net) -> None:
    scp = OurSCP()
    server = await net.serve(
        policy=make_policy(max_pdata_length=256, verify_identity=verify),
        config=make_config(max_pdata_send=512),
        handlers={UPS_PUSH: scp.push, UPS_EVENT: scp.event, UPS_QUERY: scp.find},
    )
    out = await asyncio.to_thread(pynetdicom_scu, server.port)
    assert out["max_length"] == 256
    assert out["identity"] == b"welcome-alice"
    assert out["echo"] == 0
    assert out["create"] == (0, "y" * 2000)
    assert out["set"] == 0
    assert out["get"] == (0, 1500)
    assert out["action"] == 0
    assert out["event"] == 0
    assert out["find"] == [(0xFF00, "y" * 300), (0xFF00, "y" * 301), (0xFF00, "y" * 302), (0, None)]
    assert out["got_report"] and out["report"] == (1, "y" * 900)
    assert out["released"]
    (report,) = scp.reports
    assert (await report).status == 0
    kinds = [type(r).__name__ for r in scp.seen]
    assert kinds == ["NCreateRQ", "NSetRQ", "NGetRQ", "NActionRQ", "NEventReportRQ", "CFindRQ"]
    assert read(scp.seen[1].dataset).TextValue == "y" * 1200
    peer = net.associations[0]
    await asyncio.wait_for(peer.wait_closed(), 5)
    assert peer.negotiated is not None
    assert peer.negotiated.remote_max_pdata_length == 128
    (ctx,) = [c for c in peer.negotiated.contexts.values() if c.abstract_syntax == UPS_EVENT]
    assert ctx.requestor_scp and ctx.requestor_scu


async def test_pynetdicom_requestor_abort(net: Net) -> None:
    server = await net.serve()
    out = await asyncio.to_thread(pynetdicom_scu, server.port, abort=True)
    assert out["echo"] == 0
    peer = net.associations[0]
    await asyncio.wait_for(peer.wait_closed(), 5)
    with pytest.raises(AssociationAborted, match="source 0"):
        peer._require_established()  # noqa: SLF001


async def test_pynetdicom_refused_identity_rejected(net: Net) -> None:
    server = await net.serve(policy=make_policy(verify_identity=lambda _: False))

    def attempt() -> tuple[bool, bool]:
        ae = AE(ae_title="PYNSCU")
        ae.acse_timeout = 5
        ae.add_requested_context(VERIFICATION, [IMPLICIT])
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 1
        identity.primary_field = b"mallory"
        assoc = ae.associate("127.0.0.1", server.port, ae_title="SCP", ext_neg=[identity])
        try:
            return assoc.is_established, assoc.is_rejected
        finally:
            if assoc.is_established:
                assoc.abort()
            ae.shutdown()

    established, rejected = await asyncio.to_thread(attempt)
    assert not established and rejected


# ------------------------------------------------------------------ pynetdicom answers


class PynetdicomSCP:
    """A pynetdicom acceptor on a free port, recording what it was asked."""

    def __init__(self, **ae_options: Any) -> None:
        self.seen: list[str] = []
        self.events: list[str] = []
        self.ae = AE(ae_title="PYNSCP")
        self.ae.maximum_pdu_size = 128
        self.ae.network_timeout = self.ae.dimse_timeout = 10
        for uid in (VERIFICATION, *UPS_CLASSES):
            self.ae.add_supported_context(uid, [IMPLICIT], scu_role=True, scp_role=True)
        for key, value in ae_options.items():
            setattr(self.ae, key, value)
        handlers = [
            (evt.EVT_N_CREATE, self.n_create),
            (evt.EVT_N_SET, self.n_set),
            (evt.EVT_N_GET, self.n_get),
            (evt.EVT_N_ACTION, self.n_action),
            (evt.EVT_N_EVENT_REPORT, self.n_event_report),
            (evt.EVT_C_FIND, self.c_find),
            (evt.EVT_RELEASED, lambda e: self.events.append("released")),
            (evt.EVT_ABORTED, lambda e: self.events.append("aborted")),
        ]
        self.server = self.ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
        self.port = int(self.server.socket.getsockname()[1])

    def close(self) -> None:
        self.server.shutdown()
        self.ae.shutdown()

    def n_create(self, event: Any) -> tuple[int, Dataset]:
        self.seen.append("create:" + str(len(event.attribute_list.TextValue)))
        ds = event.attribute_list
        ds.SOPInstanceUID = event.request.AffectedSOPInstanceUID
        return 0x0000, ds

    def n_set(self, event: Any) -> tuple[int, Dataset]:
        self.seen.append("set:" + str(len(event.modification_list.TextValue)))
        return 0x0000, Dataset()

    def n_get(self, event: Any) -> tuple[int, Dataset]:
        self.seen.append("get")
        return 0x0000, big_dataset(1700)

    def n_action(self, event: Any) -> tuple[int, Dataset | None]:
        self.seen.append(f"action:{event.action_type}")
        return 0x0000, None

    def n_event_report(self, event: Any) -> tuple[int, Dataset | None]:
        self.seen.append(f"event:{event.event_type}")
        return 0x0000, None

    def c_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self.seen.append("find")
        for n in range(3):
            yield 0xFF00, big_dataset(200 + n)


@pytest.fixture
def pyn_scp() -> Iterator[PynetdicomSCP]:
    scp = PynetdicomSCP()
    yield scp
    scp.close()


async def test_our_requestor_against_pynetdicom_acceptor(net: Net, pyn_scp: PynetdicomSCP) -> None:
    config = make_config(max_pdata_receive=256, max_pdata_send=256)
    assoc = await net.connect(pyn_scp.port, called="PYNSCP", config=config)
    negotiated = assoc.negotiated
    assert negotiated is not None
    assert negotiated.remote_max_pdata_length == 128
    assert assoc._core.send_limit == 128  # noqa: SLF001
    push = assoc.context_for(UPS_PUSH).context_id
    echo = await assoc.request(CEchoRQ(assoc.new_message_id()), 1)
    assert echo.status == 0
    rsp = await assoc.request(
        NCreateRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=raw(big_dataset(2500))), push
    )
    assert rsp.status == 0 and read(rsp.dataset).TextValue == "y" * 2500
    rsp = await assoc.request(
        NSetRQ(assoc.new_message_id(), UPS_PUSH, IUID, dataset=raw(big_dataset(900))), push
    )
    assert rsp.status == 0
    rsp = await assoc.request(
        NGetRQ(assoc.new_message_id(), UPS_PUSH, IUID, (0x00100010, 0x00741204)), push
    )
    assert rsp.status == 0 and len(read(rsp.dataset).TextValue) == 1700
    rsp = await assoc.request(
        NActionRQ(assoc.new_message_id(), UPS_PUSH, IUID, 3, dataset=raw(big_dataset(100))), push
    )
    assert rsp.status == 0
    event_cid = assoc.context_for(UPS_EVENT).context_id
    rsp = await assoc.request(
        NEventReportRQ(assoc.new_message_id(), UPS_EVENT, IUID, 5, dataset=raw(big_dataset(600))),
        event_cid,
    )
    assert rsp.status == 0
    query = assoc.context_for(UPS_QUERY).context_id
    find = CFindRQ(assoc.new_message_id(), UPS_QUERY, dataset=raw(big_dataset(5)))
    results = [(r.status, r.dataset is not None) async for r in assoc.find(find, query)]
    assert results == [(0xFF00, True)] * 3 + [(0, False)]
    await assoc.release()
    assert pyn_scp.seen == [
        "create:2500",
        "set:900",
        "get",
        "action:3",
        "event:5",
        "find",
    ]
    await asyncio.wait_for(until(lambda: "released" in pyn_scp.events), 5)


async def test_our_requestor_aborts_pynetdicom(net: Net, pyn_scp: PynetdicomSCP) -> None:
    assoc = await net.connect(pyn_scp.port, called="PYNSCP")
    assoc.abort()
    await asyncio.wait_for(assoc.wait_closed(), 5)
    await asyncio.wait_for(until(lambda: "aborted" in pyn_scp.events), 5)


async def until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
