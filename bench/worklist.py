"""A synthetic worklist for the C-FIND scenario: N workitems written straight into a store.

Workitem ``i`` (about 1 KB, or ``comment`` characters more):

* State: SCHEDULED for every tenth, IN PROGRESS for two in ten, COMPLETED for the rest
  (a worklist that retention keeps: mostly finished work);
* Patient ID ``P{i // 2}`` (two workitems per patient), Patient Name ``DOE^{i}``;
* Procedure Step Label ``item{i}`` (so ``item77*`` matches 1 + 10 + 100 + ... labels);
* Scheduled Procedure Step Start DateTime: day ``i % 365`` of 2025 at 08:00 + ``i % 600`` min;
* Scheduled Workitem Code ``W{i % 500}``, Scheduled Station Name Code ``S{i % 100}``.

The store is filled in one transaction with ``synchronous=OFF`` (it is a fixture, not an
acknowledged write), through the store's own indexing (``write_entries``).
"""

from __future__ import annotations

import datetime
import struct
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from ups.services.scp.attributes import check_create
from ups.services.scp.projection import top_level
from ups.services.scp.sqliteschema import write_entries
from ups.services.scp.sqlitestore import SQLiteStore
from ups.services.scp.store import decode_dataset, encode_dataset

__all__ = ["QUERIES", "build", "query"]


NOW = datetime.datetime(2025, 1, 1, 7, 0, tzinfo=datetime.UTC)
_START = datetime.datetime(2025, 1, 1, 8, 0)


def _code(value: str, scheme: str = "99BENCH") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, value
    return item


def _template(comment: int) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.ScheduledProcedureStepPriority = "MEDIUM"
    ds.ProcedureStepLabel = "item"
    ds.ScheduledProcedureStepStartDateTime = "20250101080000"
    ds.InputReadinessState = "READY"
    ds.WorklistLabel = "BENCH"
    ds.PatientID = "P"
    ds.PatientName = "DOE^X"
    ds.ScheduledWorkitemCodeSequence = Sequence([_code("W")])
    ds.ScheduledStationNameCodeSequence = Sequence([_code("S")])
    if comment:
        ds.CommentsOnTheScheduledProcedureStep = "x" * comment
    return check_create(ds, iuid="2.25.1", now=NOW).dataset


def _element(tag: int, vr: bytes, text: str) -> bytes:
    value = text.encode("ascii")
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


class _Encoder:
    """Workitem ``i`` as stored bytes: the template's elements with the varying ones
    spliced in (pydicom's encoder costs ~0.4 ms a workitem; 100,000 would take minutes)."""

    def __init__(self, comment: int) -> None:
        self.template = _template(comment)
        blob = encode_dataset(self.template)
        self.fixed = {tag: blob[s[0] : s[2]] for tag, s in top_level(blob).items()}
        self.codes: dict[tuple[str, str], bytes] = {}

    def sequence(self, keyword: str, value: str) -> bytes:
        if (keyword, value) not in self.codes:
            ds = Dataset()
            ds.add_new(keyword, "SQ", Sequence([_code(value)]))
            self.codes[keyword, value] = encode_dataset(ds)
        return self.codes[keyword, value]

    def __call__(self, i: int) -> tuple[tuple[str, ...], bytes]:
        state = "SCHEDULED" if i % 10 == 0 else "IN PROGRESS" if i % 10 < 3 else "COMPLETED"
        start = _START + datetime.timedelta(days=i % 365, minutes=i % 600)
        iuid = f"2.25.{1000 + i}"
        parts = dict(self.fixed)
        parts[0x00080018] = _element(0x00080018, b"UI", iuid)
        parts[0x00100010] = _element(0x00100010, b"PN", f"DOE^{i}")
        parts[0x00100020] = _element(0x00100020, b"LO", f"P{i // 2}")
        parts[0x00404005] = _element(0x00404005, b"DT", start.strftime("%Y%m%d%H%M%S"))
        parts[0x00404018] = self.sequence("ScheduledWorkitemCodeSequence", f"W{i % 500}")
        parts[0x00404025] = self.sequence("ScheduledStationNameCodeSequence", f"S{i % 100}")
        parts[0x00741000] = _element(0x00741000, b"CS", state)
        parts[0x00741204] = _element(0x00741204, b"LO", f"item{i}")
        columns = (iuid, state, start.strftime("%Y%m%d%H%M%S"), "MEDIUM", f"P{i // 2}", "BENCH")
        return columns, b"".join(parts[tag] for tag in sorted(parts))


def build(path: Path, count: int, *, comment: int = 0) -> None:
    """Write ``count`` workitems into a fresh SQLite store at ``path``."""
    encode = _Encoder(comment)
    store = SQLiteStore(path)
    conn = store._conn  # a fixture: one transaction, no fsync
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for i in range(count):
            columns, blob = encode(i)
            wid = conn.execute(  # the columns too: an SCP of schema 2 can serve a copy
                "INSERT INTO workitems (iuid, state, sps_start, priority, patient_id,"
                " worklist_label, dataset) VALUES (?,?,?,?,?,?,?)",
                (*columns, blob),
            ).lastrowid
            assert wid is not None
            write_entries(conn, wid, decode_dataset(blob), fresh=True)
        conn.execute("COMMIT")
    finally:
        store.close()


def _keys(**values: object) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = ""
    ds.ProcedureStepState = ""
    ds.ProcedureStepLabel = ""
    ds.PatientName = ""
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def query(name: str) -> Dataset:
    """One of :data:`QUERIES` as a C-FIND identifier (with a few return keys)."""
    if name == "patient_id":
        return _keys(PatientID="P37")
    if name == "label_wildcard":
        return _keys(ProcedureStepLabel="item77*")
    if name == "workitem_code":
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator = "W77", "99BENCH"
        return _keys(ScheduledWorkitemCodeSequence=Sequence([item]))
    if name == "station_name":
        item = Dataset()
        item.CodeValue = "S7"
        return _keys(ScheduledStationNameCodeSequence=Sequence([item]))
    if name == "one_day":
        return _keys(ScheduledProcedureStepStartDateTime="20250301-20250301")
    if name == "state":
        return _keys(ProcedureStepState="SCHEDULED")
    raise KeyError(name)


QUERIES = ("patient_id", "label_wildcard", "workitem_code", "station_name", "one_day", "state")
