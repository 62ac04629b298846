"""What the NATS sink publishes per event: subject, headers, Nats-Msg-Id, payload.

The payload is byte for byte the line ``dcmups -L --json`` writes; the message ID is the
event's identity (calling AE, UPS, event type, data set bytes), so that a resent report
is a duplicate and two different reports never are.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import rawpdu
from ups.dimse.datasets import LazyDataset
from ups.dimse.scanner import DEFAULT_SCAN_LIMITS, dataset_json
from ups.services.eventjson import JsonLineRenderer, event_json
from ups.services.events import UPSEvent
from ups.services.jsonmodel import json_line
from ups.services.sinks.messages import (
    EventMessages,
    check_subject,
    default_stream,
    header_value,
    hpub,
    message_id,
)
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN, UPS_PUSH

IVR = IMPLICIT_VR_LITTLE_ENDIAN


def _event(
    state: str = "IN PROGRESS",
    *,
    iuid: str = "1.2.3.4",
    event_type: int = 1,
    calling: str = "ARC",
    message_id: int = 7,
) -> UPSEvent:
    raw = rawpdu.state_report_dataset(state)
    model = dataset_json(raw, IVR, DEFAULT_SCAN_LIMITS)
    return UPSEvent(
        event_type,
        iuid,
        UPS_PUSH,
        calling,
        "ME",
        1_700_000_000.25,
        LazyDataset(raw, IVR),
        message_id,
        dataset_json=model,
    )


def test_subject_per_event_type_headers_and_the_json_line() -> None:
    messages = EventMessages("ups.events")
    event = _event()
    subject, payload, headers = messages(event)
    assert subject == "ups.events.state-report"
    assert payload == JsonLineRenderer()(event).encode()
    assert payload == json_line(event_json(event)).encode()  # what -L --json writes
    assert headers == {
        "Nats-Msg-Id": message_id(event),
        "Ups-Event-Type": "1",
        "Ups-Sop-Instance-Uid": "1.2.3.4",
        "Ups-Calling-Ae": "ARC",
    }
    kinds = {messages(_event(event_type=t))[0] for t in range(1, 6)}
    assert kinds == {
        "ups.events.state-report",
        "ups.events.cancel-requested",
        "ups.events.progress-report",
        "ups.events.scp-status-change",
        "ups.events.assigned",
    }


def test_the_hpub_command_is_the_nats_protocol_form_of_the_same_message() -> None:
    messages = EventMessages("ups.events")
    event = _event(calling="A B")
    subject, payload, headers = messages(event)
    command = messages.command(event, b"_INBOX.x.7")
    assert command == hpub(subject, b"_INBOX.x.7", headers, payload)
    line, rest = command.split(b"\r\n", 1)
    op, subj, reply, head_size, total = line.split(b" ")
    assert (op, subj, reply) == (b"HPUB", b"ups.events.state-report", b"_INBOX.x.7")
    head, body = rest[: int(head_size)], rest[int(head_size) :]
    assert head.startswith(b"NATS/1.0\r\n") and head.endswith(b"\r\n\r\n")
    assert b"Ups-Calling-Ae: A B\r\n" in head
    assert int(total) == int(head_size) + len(payload) and body == payload + b"\r\n"


def test_a_resent_report_has_the_same_id_and_a_different_report_another() -> None:
    first = message_id(_event())
    # The same report again: a new association, another Message ID, another arrival time.
    again = dataclasses.replace(_event(message_id=99), received=1_800_000_000.0)
    assert message_id(again) == first
    assert first.startswith("ARC:1.2.3.4:1:") and len(first.rsplit(":", 1)[1]) == 32
    others = {
        message_id(_event("COMPLETED")),  # same UPS and type, other data set
        message_id(_event(iuid="1.2.3.5")),  # same data set, other UPS
        message_id(_event(event_type=3)),  # other event type
        message_id(_event(calling="OTHER")),  # the same report from another SCP
    }
    assert first not in others and len(others) == 4


@given(st.text(max_size=24))
def test_header_values_cannot_break_out_of_their_line(text: str) -> None:
    value = header_value(text)
    assert value.isascii() and value.isprintable() and value == value.strip()
    assert "\r" not in value and "\n" not in value


def test_header_values_keep_plain_text_and_escape_the_rest_one_to_one() -> None:
    assert header_value("ARC-1 SCP") == "ARC-1 SCP"
    assert header_value("1.2.840.10008") == "1.2.840.10008"
    assert header_value("A\r\nNats-Msg-Id: x") == "A%0D%0ANats-Msg-Id:%20x"
    assert header_value(" ARC") == "%20ARC"
    assert header_value("50%") != header_value("50%25")  # '%' itself is escaped


def test_subjects_and_default_stream_names() -> None:
    assert check_subject("ups.events") == "ups.events"
    assert default_stream("ups.events") == "UPS_EVENTS"
    assert default_stream("site-a.ups") == "SITE-A_UPS"
    for bad in ("", "ups..events", "ups.*", "ups.>", "ups events", "ups.évents"):
        with pytest.raises(ValueError):
            check_subject(bad)
    with pytest.raises(ValueError):
        EventMessages("ups.events")(_event(event_type=9))
