"""The canned responder answers the raw sender with Success, and its PDUs decode with a
peer's decoders (the ceiling of scenario 9 must be a correct peer, not just fast bytes)."""

from __future__ import annotations

import itertools
from io import BytesIO

import pytest

from bench import canned, rawclient, rawpdu


async def test_raw_sender_gets_success_from_canned_responder() -> None:
    counter = itertools.count()
    server = await canned.start_server("127.0.0.1", counter)
    port = server.sockets[0].getsockname()[1]
    try:
        for kind in ("event", "echo"):
            for window in (1, 16):
                result = await rawclient.run_requests(
                    "127.0.0.1", port, kind=kind, total=50, warmup=5, window=window, timeout=30
                )
                assert result["requests"] == 50
                assert result["bad_status"] == 0
    finally:
        server.close()
        await server.wait_closed()
    assert next(counter) == 4 * 55


def test_parse_associate_rq() -> None:
    rq = rawpdu.associate_rq("CALLING", "CALLED", rawpdu.UPS_EVENT, window=16, context_id=3)
    parsed = rawpdu.parse_associate_rq(rq[rawpdu.HEADER_LEN :])
    assert parsed.called == b"CALLED".ljust(16) and parsed.calling == b"CALLING".ljust(16)
    assert (parsed.context_id, parsed.abstract_syntax) == (3, rawpdu.UPS_EVENT)
    assert parsed.transfer_syntaxes == (rawpdu.IMPLICIT_VR_LE,)
    assert parsed.window == bytes([0x53, 0, 0, 4, 0, 16, 0, 16])
    no_window = rawpdu.associate_rq("A", "B", rawpdu.VERIFICATION)
    assert rawpdu.parse_associate_rq(no_window[rawpdu.HEADER_LEN :]).window is None


def test_canned_ac_decodes_with_pynetdicom() -> None:
    pytest.importorskip("pynetdicom")
    from pynetdicom.pdu import A_ASSOCIATE_AC

    rq = rawpdu.associate_rq("CALLING", "CALLED", rawpdu.UPS_EVENT, window=16)
    ac = rawpdu.associate_ac(rawpdu.parse_associate_rq(rq[rawpdu.HEADER_LEN :]), max_pdu=32768)
    pdu = A_ASSOCIATE_AC()
    pdu.decode(ac)
    prim = pdu.to_primitive()
    (context,) = prim.presentation_context_definition_results_list
    assert (context.context_id, context.result, context.transfer_syntax) == (
        1,
        0,
        [rawpdu.IMPLICIT_VR_LE],
    )
    items = {type(item).__name__: item for item in prim.user_information}
    assert items["MaximumLengthNotification"].maximum_length_received == 32768
    window = items["AsynchronousOperationsWindowNegotiation"]
    assert window.maximum_number_operations_invoked == 16
    assert window.maximum_number_operations_performed == 16
    assert rawpdu.max_pdu_length(memoryview(ac)[rawpdu.HEADER_LEN :]) == 32768


@pytest.mark.parametrize(
    ("make", "field"),
    [(rawpdu.event_rsp_template, 0x8100), (rawpdu.echo_rsp_template, 0x8030)],
)
def test_response_templates_stamp_message_id_being_responded_to(make: object, field: int) -> None:
    pytest.importorskip("pynetdicom")
    from pynetdicom.dsutils import decode
    from pynetdicom.pdu import P_DATA_TF

    template = make()  # type: ignore[operator]
    pdu = P_DATA_TF()
    pdu.decode(template.stamped(4242))
    ((ctx, value),) = pdu.to_primitive().presentation_data_value_list
    assert (ctx, value[0]) == (1, 0x03)
    command = decode(BytesIO(value[1:]), True, True)
    assert command.MessageIDBeingRespondedTo == 4242
    assert command.CommandField == field
    assert command.Status == 0x0000
    assert command.CommandGroupLength == len(value) - 1 - 12
