"""Hypothesis strategies: workitems and C-FIND queries over the prefilter's attributes.

Values come from small alphabets so that queries hit: case variants, the wild card
characters themselves, GLOB/LIKE specials (``[ % _``), PN delimiters and letters whose
case rules differ between ``str.casefold`` and ``re`` (``ı ſ K ß``). No backslash (the
value delimiter: multiple values are generated as lists) and no NUL or control
characters (not allowed in these VRs).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

ALPHABET = "aAbBsSkiI*?[%_ ^=.ıſKß"
CODES = ("W1", "w1", "W2", "W[1]", "W%", "W_2")

_text = st.text(ALPHABET, min_size=0, max_size=5)
_POOL = ["a", "AB", "a b", "ß", "SS", "ıa", "IA", "ſk", "W[1]", "W%", "a^b=c"]
_value = st.one_of(st.sampled_from(_POOL), st.sampled_from(_POOL), st.sampled_from(_POOL), _text)
_dt = st.sampled_from(
    [
        "2024",
        "202401",
        "20240105",
        "2024010510",
        "202401051030",
        "20240105103000",
        "20240105103000.5",
        "20240105103000+0100",
        "20240104230000-0500",
        "20240106",
        "19991231235959",
        "garbage",
        "2024013",
    ]
)
_dt_key = st.sampled_from(
    [
        "20240105",
        "20240105-20240105",
        "20240105-",
        "-20240105",
        "2024-2024",
        "20240105103000",
        "20240105100000+0100-20240105120000+0100",
        "202401-202402",
        "-",
        "2024010510",
    ]
)


def _multi(values: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(values, st.lists(values, min_size=1, max_size=3))


def _code_item(value: st.SearchStrategy[str]) -> st.SearchStrategy[Dataset]:
    @st.composite
    def build(draw: st.DrawFn) -> Dataset:
        item = Dataset()
        if draw(st.booleans()):
            item.CodeValue = draw(value)
        if draw(st.booleans()):
            item.CodingSchemeDesignator = draw(st.sampled_from(["99L", "DCM", ""]))
        return item

    return build()


_codes = st.lists(_code_item(st.sampled_from(CODES)), max_size=2)


@st.composite
def _performer(draw: st.DrawFn, value: st.SearchStrategy[str]) -> Dataset:
    item = Dataset()
    if draw(st.booleans()):
        item.HumanPerformerCodeSequence = Sequence(draw(st.lists(_code_item(value), max_size=2)))
    if draw(st.booleans()):
        item.HumanPerformerName = draw(_value)
    return item


@st.composite
def workitems(draw: st.DrawFn, uid: str) -> Dataset:
    """A stored workitem (only what the prefilter looks at, and a comment)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # the non-ASCII letters survive the store
    ds.SOPInstanceUID = uid
    optional: dict[str, st.SearchStrategy[Any]] = {
        "ProcedureStepState": st.sampled_from(["SCHEDULED", "IN PROGRESS", "COMPLETED"]),
        "ScheduledProcedureStepPriority": st.sampled_from(["HIGH", "MEDIUM", "LOW"]),
        "PatientID": _multi(_value),
        "PatientName": _multi(_value),
        "ProcedureStepLabel": _multi(_value),
        "WorklistLabel": _value,
        "InputReadinessState": st.sampled_from(["READY", "UNAVAILABLE", "INCOMPLETE"]),
        "ScheduledProcedureStepStartDateTime": _multi(_dt),
        "TimezoneOffsetFromUTC": st.sampled_from(["+0100", "-0500", "+0000"]),
        "ScheduledWorkitemCodeSequence": _codes.map(Sequence),
        "ScheduledStationNameCodeSequence": _codes.map(Sequence),
        "ScheduledStationClassCodeSequence": _codes.map(Sequence),
        "ScheduledStationGeographicLocationCodeSequence": _codes.map(Sequence),
        "ScheduledHumanPerformersSequence": st.lists(
            _performer(st.sampled_from(CODES)), max_size=2
        ).map(Sequence),
        "CommentsOnTheScheduledProcedureStep": _value,
    }
    for keyword, strategy in optional.items():
        if draw(st.booleans()):
            setattr(ds, keyword, draw(strategy))
    return ds


def pool_of(items: tuple[Dataset, ...]) -> list[str]:
    """The text values of some workitems (and their codes): what queries should hit."""
    out: set[str] = set()

    def walk(ds: Dataset) -> None:
        for elem in ds:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    walk(item)
            elif elem.VR not in ("UI", "CS") and elem.value:
                values = elem.value if isinstance(elem.value, (list, MultiValue)) else [elem.value]
                for text in filter(None, map(str, values)):
                    out.update((text, text.upper(), text.lower()))  # PN: case-insensitive

    for item in items:
        walk(item)
    return sorted(out)


def _pattern(draw: st.DrawFn, value: st.SearchStrategy[str]) -> str:
    base = draw(value)
    chars = [draw(st.sampled_from([c, c, "*", "?"])) for c in base]
    return "".join(chars) + draw(st.sampled_from(["", "*", "?"]))


@st.composite
def key_values(draw: st.DrawFn, pool: tuple[str, ...] = ()) -> Any:
    """A key's value: universal, single, wild card or several; mostly from ``pool``."""
    value = st.one_of(st.sampled_from(pool), _value) if pool else _value
    kind = draw(st.sampled_from(["empty", "value", "pattern", "pattern", "multi"]))
    if kind == "empty":
        return ""
    if kind == "value":
        return draw(value)
    if kind == "pattern":
        return _pattern(draw, value)
    return draw(st.lists(st.one_of(value, st.builds(lambda: "a*")), min_size=2, max_size=3))


@st.composite
def _query_item(draw: st.DrawFn, pool: tuple[str, ...]) -> Dataset:
    item = Dataset()
    if draw(st.booleans()):
        item.CodeValue = draw(st.one_of(st.sampled_from(CODES), key_values(pool)))
    if draw(st.booleans()):
        item.CodingSchemeDesignator = draw(st.sampled_from(["99L", ""]))
    return item


@st.composite
def queries(draw: st.DrawFn, pool: tuple[str, ...] = ()) -> Dataset:
    """A C-FIND identifier over the indexed attributes (and one that is not indexed),
    its values mostly drawn from ``pool`` (see :func:`pool_of`)."""
    q = Dataset()
    for keyword in (
        "ProcedureStepState",
        "ScheduledProcedureStepPriority",
        "PatientID",
        "PatientName",
        "ProcedureStepLabel",
        "WorklistLabel",
        "InputReadinessState",
        "CommentsOnTheScheduledProcedureStep",
    ):
        if draw(st.integers(0, 2)) == 0:
            setattr(q, keyword, draw(key_values(pool)))
    if draw(st.integers(0, 3)) == 0:
        q.ScheduledProcedureStepStartDateTime = draw(st.one_of(st.just(""), _dt_key))
    if draw(st.integers(0, 5)) == 0:
        q.TimezoneOffsetFromUTC = draw(st.sampled_from(["+0100", "-0500"]))
    if draw(st.integers(0, 5)) == 0:  # another VR: matching's rule, not the prefilter's
        q.add(DataElement(0x00100010, "LO", draw(key_values(pool))))
    for keyword in (
        "ScheduledWorkitemCodeSequence",
        "ScheduledStationNameCodeSequence",
        "ScheduledStationClassCodeSequence",
        "ScheduledStationGeographicLocationCodeSequence",
    ):
        if draw(st.integers(0, 3)) == 0:
            setattr(q, keyword, Sequence(draw(st.lists(_query_item(pool), max_size=2))))
    if draw(st.integers(0, 3)) == 0:
        performer = Dataset()
        if draw(st.booleans()):
            performer.HumanPerformerCodeSequence = Sequence(
                draw(st.lists(_query_item(pool), max_size=2))
            )
        if draw(st.booleans()):
            performer.HumanPerformerName = draw(key_values(pool))
        q.ScheduledHumanPerformersSequence = Sequence([performer])
    if draw(st.integers(0, 4)) == 0:
        q.SOPInstanceUID = draw(
            st.one_of(st.just(""), st.lists(st.sampled_from(["1.1", "1.2", "1.3"]), min_size=1))
        )
    return q


@st.composite
def return_queries(draw: st.DrawFn, item: Dataset) -> Dataset:
    """A query ``item`` mostly matches: each of its attributes left out, universal, or its
    own value; sequence keys whole, or items of its own items' keys (some universal, some
    that no item has), so that every return-key form is exercised."""
    q = Dataset()
    for elem in item:
        choice = draw(st.sampled_from(["out", "universal", "same"]))
        if choice == "out" or elem.keyword in ("SpecificCharacterSet", "SOPInstanceUID"):
            continue
        if elem.VR != "SQ":
            q.add(DataElement(elem.tag, elem.VR, "" if choice == "universal" else elem.value))
            continue
        items = list(elem.value or [])
        if choice == "universal" or not items:
            q.add(DataElement(elem.tag, "SQ", Sequence([])))
            continue
        key = Dataset()
        for sub in draw(st.sampled_from(items)):
            if sub.VR != "SQ" and draw(st.booleans()):
                same = draw(st.booleans())
                key.add(DataElement(sub.tag, sub.VR, sub.value if same else ""))
        key.CodeMeaning = ""  # absent from every item: returned empty
        q.add(DataElement(elem.tag, "SQ", Sequence([key])))
    q.PatientBirthDate = ""
    return q
