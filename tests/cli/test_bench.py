"""dcmups bench engine: counts, windows, failures by status, against our server and pynetdicom."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from io import StringIO

import pytest

import ups
from ups.cli.bench import BenchOptions, run, run_blocking
from ups.dimse.messages import NEventReportRQ, NEventReportRSP, Request, Response
from ups.net.association import RequestContext
from ups.net.server import Server, serve
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.services.uids import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UPS_EVENT,
    VERIFICATION,
)

SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    seen: list[int] = []

    def on_event(request: Request, ctx: RequestContext) -> Response:
        assert isinstance(request, NEventReportRQ)
        seen.append(request.message_id)
        # Every tenth event fails, so failures are counted by status.
        status = 0x0110 if len(seen) % 10 == 0 else 0x0000
        return NEventReportRSP(request.message_id, status, request.affected_sop_class_uid)

    policy = AcceptorPolicy(
        ae_titles=None,
        supported={
            VERIFICATION: SyntaxSupport(SYNTAXES),
            UPS_EVENT: SyntaxSupport(SYNTAXES, requestor_scu=True, requestor_scp=True),
        },
        max_pdata_length=16384,
        implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        max_ops_performed=16,
    )
    srv = await serve("127.0.0.1", 0, policy, handlers={UPS_EVENT: on_event})
    try:
        yield srv
    finally:
        await srv.close()


@pytest.mark.parametrize(("window", "associations"), [(1, 1), (8, 1), (4, 3)])
async def test_echo_count_is_exact(server: Server, window: int, associations: int) -> None:
    report = await run(
        BenchOptions(
            "echo",
            f"ANY@127.0.0.1:{server.port}",
            count=300,
            window=window,
            associations=associations,
        )
    )
    assert report.completed == 300
    assert report.statuses == {0: 300}
    assert report.failures == 0
    assert len(report.latencies) == 300
    assert 0 < report.percentile(50) <= report.percentile(99) <= max(report.latencies)


async def test_event_failures_are_counted_by_status(server: Server) -> None:
    report = await run(BenchOptions("event", f"ANY@127.0.0.1:{server.port}", count=100, window=4))
    assert report.completed == 100
    assert report.statuses[0x0110] == 10
    assert report.failures == 10


async def test_duration_bound_stops(server: Server) -> None:
    report = await run(
        BenchOptions("echo", f"ANY@127.0.0.1:{server.port}", count=None, duration=0.3)
    )
    assert report.completed > 0
    assert report.elapsed < 5


async def test_unreachable_is_an_error_not_a_hang() -> None:
    report = await run(BenchOptions("echo", "ANY@127.0.0.1:1", count=10))
    assert report.completed == 0
    assert report.errors["ConnectFailed"] == 1


@pytest.fixture
def pynetdicom_echo_scp() -> Iterator[int]:
    pynetdicom = pytest.importorskip("pynetdicom")
    ae = pynetdicom.AE("ECHOSCP")
    ae.add_supported_context(VERIFICATION)
    srv = ae.start_server(("127.0.0.1", 0), block=False)
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()


def test_json_report_against_pynetdicom(pynetdicom_echo_scp: int) -> None:
    out = StringIO()
    code = run_blocking(
        BenchOptions("echo", f"ECHOSCP@127.0.0.1:{pynetdicom_echo_scp}", count=20),
        out,
        as_json=True,
    )
    assert code == 0
    line = json.loads(out.getvalue())
    assert line["op"] == "bench" and line["completed"] == 20
    assert set(line["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert line["statuses"] == {"0000": 20}
