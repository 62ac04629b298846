"""What the ``-L`` daemon writes: one line per event, whole lines, a read's lines at once.

* :func:`format_event_line` — the readable line (time, event, UPS, sender and the
  attributes that matter), quoted so it splits back into ``key=value`` words;
* :func:`event_json` and :class:`JsonLineRenderer` — the ``--json`` object and its fast
  renderer, which live in :mod:`ups.services.eventjson` (the NATS sink publishes the same
  line) and are re-exported here;
* :class:`LineWriter` and :class:`LineBatch` — the output: one ``os.write`` for the lines
  of one read (under a lock shared by the workers), handed to the listener as its batch
  consumer, so the events are answered only after their lines were written.

This is the daemon's per-event path, measured by ``python -m bench --only 9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Callable
from typing import Any, TextIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from ups.services.eventjson import JsonLineRenderer, event_json, timestamp
from ups.services.events import UPSEvent

__all__ = [
    "JsonLineRenderer",
    "LineBatch",
    "LineWriter",
    "event_json",
    "format_event_line",
    "timestamp",
]

_SAFE = re.compile(r"[!#-~\u00a0-\uffff]*")  # printable, no space, no quote
_SUMMARY: dict[int, tuple[str, ...]] = {
    1: ("ProcedureStepState", "InputReadinessState", "ReasonForCancellation"),
    2: ("RequestingAE", "ReasonForCancellation", "ContactDisplayName", "ContactURI"),
    3: ("ProcedureStepProgress", "ProcedureStepProgressDescription"),
    4: ("SCPStatus", "SubscriptionListStatus", "UnifiedProcedureStepListStatus"),
    5: ("HumanPerformerOrganization", "CodeMeaning", "CodeValue"),
}
_NESTED = (
    "ProcedureStepProgressInformationSequence",
    "HumanPerformerCodeSequence",
    "ScheduledStationNameCodeSequence",
)


def _quote(text: str) -> str:
    if text and _SAFE.fullmatch(text) and "=" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _find(ds: Dataset, keyword: str) -> object:
    if keyword in ds:
        return ds.data_element(keyword).value  # type: ignore[union-attr]
    for seq in _NESTED:
        items = ds.get(seq)
        if items and keyword in items[0]:
            return items[0].data_element(keyword).value
    return None


def _model_value(attribute: dict[str, Any] | None) -> object:
    """A JSON model attribute's value as the text line shows it (as pydicom's ``str``)."""
    if not attribute or "Value" not in attribute:
        return None
    values = [_model_text(value) for value in attribute["Value"]]
    return values[0] if len(values) == 1 else "\\".join(str(v) for v in values)


def _model_text(value: object) -> object:
    """A JSON value as text: a PN's alphabetic group; DS "50" (50.0 in JSON) as 50."""
    if isinstance(value, dict):
        return value.get("Alphabetic", "")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _find_in_model(model: dict[str, Any], keyword: str) -> object:
    tag = _MODEL_KEYS[keyword]
    if tag in model:
        return _model_value(model[tag])
    for seq in _NESTED:
        items = model.get(_MODEL_KEYS[seq], {}).get("Value")
        if items and isinstance(items[0], dict) and tag in items[0]:
            return _model_value(items[0][tag])
    return None


_MODEL_KEYS: dict[str, str] = {
    keyword: f"{tag_for_keyword(keyword):08X}"
    for keyword in {*(k for keys in _SUMMARY.values() for k in keys), *_NESTED}
}


def format_event_line(event: UPSEvent) -> str:
    """One readable line: time, event name, UPS, sender and the attributes that matter.

    Every value is quoted when it holds a space, ``=`` or a control character, so the
    line splits back into ``key=value`` words and never spans two lines. The values
    come from the scanner's JSON model when the listener made one (no pydicom on the
    daemon's per-event path), else from the decoded data set.
    """
    parts = [
        timestamp(event.received),
        event.name,
        f"iuid={_quote(event.iuid)}",
        f"from={_quote(event.calling_aet)}",
    ]
    if event.family == "trial":
        parts.append("trial")
    if event.has_dataset:
        model = event.dataset_json
        ds = event.dataset if model is None else None
        for keyword in _SUMMARY.get(event.event_type_id, ()):
            value = _find(ds, keyword) if ds is not None else _find_in_model(model or {}, keyword)
            if value is not None and value != "":
                parts.append(f"{keyword}={_quote(str(value))}")
    return " ".join(parts)


class LineWriter:
    """Writes whole lines: one ``os.write`` per line on a real file, else write+flush."""

    def __init__(self, out: TextIO, lock_fd: int | None = None) -> None:
        self._out = out
        self._lock_fd = lock_fd
        self._fd: int | None = None
        try:
            out.flush()
            self._fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def write(self, line: str) -> None:
        if self._fd is None:
            self._out.write(line + "\n")
            self._out.flush()
            return
        data = memoryview((line + "\n").encode("utf-8", "backslashreplace"))
        lock = self._lock_fd
        if lock is not None:
            fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            while data:
                written = os.write(self._fd, data)
                data = data[written:]
        finally:
            if lock is not None:
                fcntl.lockf(lock, fcntl.LOCK_UN)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._out.flush()


class LineBatch:
    """The daemon's consumer: render each event as it arrives, write a read's lines at once.

    ``commit`` is one ``os.write`` (one lock, with workers) for every event of a read;
    the listener answers them Success only after it returned (DESIGN.md: writes are
    batched per read).
    """

    def __init__(self, writer: LineWriter, render: Callable[[UPSEvent], str]) -> None:
        self._writer = writer
        self._render = render
        self._lines: list[str] = []
        self.on_error: Callable[[OSError], None] | None = None

    def add(self, event: UPSEvent) -> None:
        self._lines.append(self._render(event))

    def commit(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            self._writer.write("\n".join(lines))
        except OSError as exc:
            if self.on_error is not None:
                self.on_error(exc)
            raise
