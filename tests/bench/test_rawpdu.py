"""The benchmark's hand-built PDUs decode as intended with a peer's decoders."""

from __future__ import annotations

from io import BytesIO

import pytest

from bench import rawpdu

pynetdicom = pytest.importorskip("pynetdicom")


def test_associate_rq_decodes_with_window() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    pdu = A_ASSOCIATE_RQ()
    pdu.decode(rawpdu.associate_rq("CALLING", "CALLED", rawpdu.UPS_EVENT, window=16))
    prim = pdu.to_primitive()
    assert prim.calling_ae_title == "CALLING"
    assert prim.called_ae_title == "CALLED"
    (ctx,) = prim.presentation_context_definition_list
    assert ctx.abstract_syntax == rawpdu.UPS_EVENT
    assert ctx.transfer_syntax == [rawpdu.IMPLICIT_VR_LE]
    names = {type(item).__name__ for item in prim.user_information}
    assert "AsynchronousOperationsWindowNegotiation" in names
    assert "MaximumLengthNotification" in names


def test_event_template_stamps_message_id() -> None:
    from pynetdicom.dsutils import decode
    from pynetdicom.pdu import P_DATA_TF

    pdu = P_DATA_TF()
    pdu.decode(rawpdu.event_template().stamped(4242))
    (cmd_ctx, cmd), (data_ctx, data) = pdu.to_primitive().presentation_data_value_list
    assert (cmd_ctx, cmd[0], data_ctx, data[0]) == (1, 0x03, 1, 0x02)
    command = decode(BytesIO(cmd[1:]), True, True)
    assert command.MessageID == 4242
    assert command.CommandField == rawpdu.N_EVENT_REPORT_RQ
    assert command.EventTypeID == 1
    assert command.CommandGroupLength == len(cmd) - 1 - 12
    dataset = decode(BytesIO(data[1:]), True, True)
    assert dataset.ProcedureStepState == "IN PROGRESS"
    assert dataset.InputReadinessState == "READY"


def test_response_parsing() -> None:
    pdu = rawpdu.p_data_tf(1, rawpdu.response_command(0x8100, 7, rawpdu.UPS_PUSH))
    assert len(pdu) == rawpdu.event_rsp_size()
    ((ctx, header, fragment),) = list(rawpdu.pdvs(memoryview(pdu)[rawpdu.HEADER_LEN :]))
    values = rawpdu.command_values(fragment)
    assert (ctx, header) == (1, 0x03)
    assert values[0x0120] == b"\x07\x00" and values[0x0900] == b"\x00\x00"
    with pytest.raises(ValueError):
        list(rawpdu.pdvs(memoryview(b"\x00\x00\x00\x09\x01")))
