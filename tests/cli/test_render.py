"""What the -L daemon writes: the readable line, the --json object, the fast renderer."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from ups.cli.output import json_line
from ups.cli.render import JsonLineRenderer, event_json, format_event_line
from ups.dimse.datasets import LazyDataset, encode_dataset
from ups.dimse.scanner import dataset_json
from ups.services.events import UPSEvent
from ups.services.uids import IMPLICIT_VR_LITTLE_ENDIAN, UPS_PUSH, UPS_PUSH_TRIAL

IVR = IMPLICIT_VR_LITTLE_ENDIAN


def _event(event_type: int, ds: Dataset, sop_class: str = UPS_PUSH) -> UPSEvent:
    raw = LazyDataset(encode_dataset(ds, IVR), IVR)
    return UPSEvent(event_type, "1.2.3", sop_class, "ARC", "ME", 1_700_000_000.25, raw, 7)


# ------------------------------------------------------------------------ formats


def test_text_line_summarises_and_quotes() -> None:
    ds = Dataset()
    ds.RequestingAE = "WS 1"
    ds.ReasonForCancellation = 'bad\nline "x"'
    line = format_event_line(_event(2, ds))
    assert line.startswith("2023-11-14T22:13:20.250Z UPS Cancel Requested iuid=1.2.3 from=ARC")
    assert 'RequestingAE="WS 1"' in line
    assert "\n" not in line and "\\n" in line
    progress = Dataset()
    item = Dataset()
    item.ProcedureStepProgress = "50"
    progress.ProcedureStepProgressInformationSequence = [item]
    line = format_event_line(_event(3, progress, UPS_PUSH_TRIAL))
    assert "ProcedureStepProgress=50" in line and " trial " in line


def test_json_object_carries_the_dicom_json_model() -> None:
    ds = Dataset()
    ds.ProcedureStepState = "COMPLETED"
    obj = event_json(_event(1, ds))
    assert obj["op"] == "event" and obj["event_type"] == 1
    assert obj["iuid"] == "1.2.3" and obj["calling_aet"] == "ARC"
    assert obj["dataset"] == {"00741000": {"vr": "CS", "Value": ["COMPLETED"]}}
    empty = UPSEvent(4, "1.2.840.10008.5.1.4.34.5", UPS_PUSH, "ARC", "ME", 0.0)
    assert event_json(empty)["dataset"] == {}


# ------------------------------------------------------------------------ the fast renderer

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)
_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    _TEXT,
)
_MODELS = st.dictionaries(
    st.from_regex(r"[0-9A-F]{8}", fullmatch=True),
    st.fixed_dictionaries({"vr": st.sampled_from(["CS", "DS", "FD", "PN", "SQ"])}).flatmap(
        lambda attr: (
            st.just(attr)
            | st.fixed_dictionaries(
                {"vr": st.just(attr["vr"]), "Value": st.lists(_VALUES, max_size=3)}
            )
        )
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.integers(1, 5),
    iuid=_TEXT,
    calling=_TEXT,
    called=_TEXT,
    sop_class=st.sampled_from([UPS_PUSH, UPS_PUSH_TRIAL]),
    received=st.floats(0, 4e9),
    message_id=st.integers(0, 0xFFFF),
    model=st.none() | _MODELS,
)
def test_fast_json_renderer_equals_the_reference(
    event_type: int,
    iuid: str,
    calling: str,
    called: str,
    sop_class: str,
    received: float,
    message_id: int,
    model: dict[str, Any] | None,
) -> None:
    """The daemon's per-event renderer writes exactly ``json_line(event_json(event))``."""
    render = JsonLineRenderer()
    event = UPSEvent(
        event_type,
        iuid,
        sop_class,
        calling,
        called,
        received,
        None,
        message_id,
        dataset_json=model,
    )
    for _ in range(2):  # the second time from its caches
        assert render(event) == json_line(event_json(event))


def test_text_line_from_the_scanner_model_matches_the_decoded_one() -> None:
    """The daemon's text lines come from the scanner's model (no pydicom per event);
    they read as the lines made from the decoded data set do."""
    cancel = Dataset()
    cancel.RequestingAE = "WS 1"
    cancel.ReasonForCancellation = 'bad\nline "x"'
    progress = Dataset()
    item = Dataset()
    item.ProcedureStepProgress = "50"
    item.ProcedureStepProgressDescription = "half way"
    progress.ProcedureStepProgressInformationSequence = [item]
    state = Dataset()
    state.ProcedureStepState = "IN PROGRESS"
    state.InputReadinessState = "READY"
    for event_type, ds in ((2, cancel), (3, progress), (1, state)):
        decoded = _event(event_type, ds)
        assert decoded.raw_dataset is not None
        model = dataset_json(decoded.raw_dataset.raw, IVR)
        scanned = dataclasses.replace(decoded, dataset_json=model)
        assert format_event_line(scanned) == format_event_line(decoded)
