"""An event as one DICOM JSON line: what ``dcmups -L --json`` writes and what sinks publish.

* :func:`event_json` — the object (``op`` = ``"event"``, the event fields, and the Event
  Information in the PS3.18 F.2 DICOM JSON model); ``json_line(event_json(event))``
  (:mod:`ups.services.jsonmodel`) is the reference line;
* :class:`JsonLineRenderer` — the same line byte for byte, built faster: the daemon's and
  the NATS sink's per-event cost (measured by ``python -m bench --only 9``);
* :func:`timestamp` — ISO 8601 UTC with milliseconds, as the lines carry it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ups.services.events import UPSEvent
from ups.services.jsonmodel import json_line, to_json_model

__all__ = ["JsonLineRenderer", "event_json", "timestamp"]

_stamp: list[tuple[int, str]] = [(-1, ""), (-1, "")]  # (second, text), (millisecond, text)


def timestamp(t: float) -> str:
    """ISO 8601 UTC with milliseconds. A busy listener stamps dozens of events within one
    millisecond: each second is formatted once, each millisecond's text made once."""
    millis = int(t * 1000)
    cached = _stamp[1]
    if cached[0] == millis:
        return cached[1]
    second = millis // 1000
    seconds = _stamp[0]
    if seconds[0] != second:
        seconds = _stamp[0] = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    text = f"{seconds[1]}.{millis % 1000:03d}Z"
    _stamp[1] = (millis, text)
    return text


def event_json(event: UPSEvent) -> dict[str, Any]:
    """The ``--json`` object of one event; ``dataset`` is the PS3.18 F.2 JSON model."""
    return {
        "op": "event",
        "event_type": event.event_type_id,
        "event_name": event.name,
        "iuid": event.iuid,
        "sop_class_uid": event.sop_class_uid,
        "family": event.family,
        "calling_aet": event.calling_aet,
        "called_aet": event.called_aet,
        "received": timestamp(event.received),
        "message_id": event.message_id,
        "dataset": _dataset_model(event),
    }


def _dataset_model(event: UPSEvent) -> dict[str, Any]:
    if event.dataset_json is not None:
        return event.dataset_json
    return to_json_model(event.dataset) if event.has_dataset else {}


_quote_json = json.encoder.encode_basestring


def _no_default(value: object) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")


def _model_encoder() -> Callable[[dict[str, Any]], str]:
    """json's C encoder made once, not per call as ``JSONEncoder.encode`` makes it:
    compact, UTF-8 kept, NaN refused (the caller falls back to ``json_line``)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    iterencode = make(None, _no_default, _quote_json, None, ":", ",", False, False, False)

    def encode(model: dict[str, Any]) -> str:
        return "".join(iterencode(model, 0))

    return encode


_encode_model = _model_encoder()


class JsonLineRenderer:
    """``json_line(event_json(event))``, built faster: the daemon's per-event cost.

    What repeats from event to event (event type and name, SOP class, family, AE
    titles) is rendered once per combination; the rest is joined around the one
    ``json`` call that encodes the data set model. The output is byte-identical to
    ``json_line(event_json(event))`` (a test holds it to that), which stays the
    reference and the fallback for values JSON cannot carry (NaN, Infinity).
    """

    __slots__ = ("_heads", "_middles")

    def __init__(self) -> None:
        self._heads: dict[int, str] = {}
        self._middles: dict[tuple[str, str, str, str], str] = {}

    def __call__(self, event: UPSEvent) -> str:
        head = self._heads.get(event.event_type_id)
        if head is None:
            head = self._heads[event.event_type_id] = (
                f'{{"op":"event","event_type":{event.event_type_id:d},'
                f'"event_name":{_quote_json(event.name)},"iuid":'
            )
        key = (
            event.sop_class_uid,
            event.context_sop_class_uid,
            event.calling_aet,
            event.called_aet,
        )
        middle = self._middles.get(key)
        if middle is None:
            if len(self._middles) > 1024:
                self._middles.clear()
            middle = self._middles[key] = (
                f',"sop_class_uid":{_quote_json(event.sop_class_uid)},'
                f'"family":"{event.family}","calling_aet":{_quote_json(event.calling_aet)},'
                f'"called_aet":{_quote_json(event.called_aet)},"received":"'
            )
        try:
            model = _encode_model(_dataset_model(event))
        except (ValueError, TypeError):  # NaN, Infinity or an odd type: the reference path
            return json_line(event_json(event))
        line = (
            f"{head}{_quote_json(event.iuid)}{middle}{timestamp(event.received)}"
            f'","message_id":{event.message_id:d},"dataset":{model}}}'
        )
        if "\u2028" in line or "\u2029" in line:
            line = line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        return line
