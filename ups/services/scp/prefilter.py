"""The C-FIND prefilter: which stored values a store indexes, and which a query needs.

This module owns the database-neutral half of "queries that scale" (issue 17): the
attributes worklist queries use (:data:`INDEX_KEYS`), the index entries of a workitem
(:func:`index_entries`, one ``(key, value)`` per value, sequences and multi-valued
attributes included) and the translation of a C-FIND identifier into conditions on
those entries (:func:`compile_query`). A store keeps the entries beside each workitem
and renders the conditions in its SQL; :mod:`ups.services.scp.matching` stays the final
check, so the answer is exactly PS3.4 C.2.2.2 as long as the prefilter keeps every true
match. It does, because both halves reuse matching's own rules:

* a value is stored as matching compares it: padding stripped (C.2.2.2.1), a PN as its
  normalised forms (the whole name and each component group) case-folded
  (C.2.2.2.1.1), a DT as the first microsecond it denotes in UTC with the workitem's
  Timezone Offset From UTC (C.2.2.2.5), one entry per value (C.2.2.3);
* a key becomes a condition only when its VR is the dictionary's (another VR changes
  the rule) and it is not universal (C.2.2.2.3): a single value is :class:`Equal`, a
  wild card (C.2.2.2.4) a :class:`Pattern`, a date-time range a :class:`Between` of
  the bounds matching computes; the values of a multi-valued key, and the items of a
  sequence key (C.2.2.2.6), are alternatives; an item that leaves the indexed
  attribute universal makes the whole sequence key unconstrained;
* a PN wild card is matched case-insensitively by ``re`` (whose case rules are not
  ``str.casefold``'s), so it becomes a condition only when it is ASCII, and a name
  that is not ASCII carries an extra empty entry (:data:`UNKNOWN`) that every PN
  pattern accepts;
* anything else (other attributes, other VRs) is left to matching.

A query key that cannot be read (a malformed date-time range) raises the
:class:`~ups.services.errors.ServiceError` A900 matching would raise, before any match
is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timezone

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from ups.services.scp.matching import (
    WILDCARD_VRS,
    _all_universal,
    _Invalid,
    _pn_norm,
    _point,
    _query_bounds,
    _split_range,
    _strip,
    _tz_of,
    _values,
)

__all__ = [
    "INDEX_KEYS",
    "UNKNOWN",
    "Between",
    "Condition",
    "Equal",
    "IndexKey",
    "Pattern",
    "Prefilter",
    "Term",
    "compile_query",
    "index_entries",
    "index_range",
]

UNKNOWN = ""
"""The entry of a PN form a pattern cannot judge in SQL (not ASCII); never a real value."""

Value = str | int


@dataclass(frozen=True, slots=True)
class IndexKey:
    """One indexed attribute: its entry name, its path (sequences, then the leaf), VR."""

    name: str
    path: tuple[int, ...]
    vr: str


def _key(name: str, *keywords: str) -> IndexKey:
    path = tuple(int(tag_for_keyword(k) or 0) for k in keywords)
    return IndexKey(name, path, dictionary_VR(path[-1]))


INDEX_KEYS: tuple[IndexKey, ...] = (
    # In the order a store should prefer them as the driving condition: most selective first.
    _key("iuid", "SOPInstanceUID"),
    _key("patient_id", "PatientID"),
    _key("workitem_code", "ScheduledWorkitemCodeSequence", "CodeValue"),
    _key("station_name", "ScheduledStationNameCodeSequence", "CodeValue"),
    _key(
        "performer", "ScheduledHumanPerformersSequence", "HumanPerformerCodeSequence", "CodeValue"
    ),
    _key("performer_name", "ScheduledHumanPerformersSequence", "HumanPerformerName"),
    _key("label", "ProcedureStepLabel"),
    _key("patient_name", "PatientName"),
    _key("sps_start", "ScheduledProcedureStepStartDateTime"),
    _key("station_class", "ScheduledStationClassCodeSequence", "CodeValue"),
    _key("station_location", "ScheduledStationGeographicLocationCodeSequence", "CodeValue"),
    _key("worklist_label", "WorklistLabel"),
    _key("input_readiness", "InputReadinessState"),
    _key("priority", "ScheduledProcedureStepPriority"),
    _key("state", "ProcedureStepState"),
)
KEY_ORDER = {key.name: rank for rank, key in enumerate(INDEX_KEYS)}


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Equal:
    """The entry equals ``value``."""

    value: Value


@dataclass(frozen=True, slots=True)
class Pattern:
    """The entry matches a DICOM wild card: ``*`` any run, ``?`` one character."""

    pattern: str

    def glob(self) -> str:
        """SQLite GLOB: ``*`` and ``?`` mean the same; ``[`` is escaped as ``[[]``."""
        return self.pattern.replace("[", "[[]")

    def like(self, escape: str = "\\") -> str:
        """SQL LIKE (case-sensitive where the database's LIKE is) with ``ESCAPE escape``."""
        out = []
        for ch in self.pattern:
            if ch in ("%", "_", escape):
                out.append(escape + ch)
            else:
                out.append("%" if ch == "*" else "_" if ch == "?" else ch)
        return "".join(out)

    def prefix(self) -> str:
        """The literal text every match starts with (for an index range)."""
        cuts = [i for i in (self.pattern.find("*"), self.pattern.find("?")) if i >= 0]
        return self.pattern[: min(cuts)] if cuts else self.pattern

    def above(self) -> str | None:
        """The smallest string above every string that starts with :meth:`prefix`, in code
        point order (None: none; the upper bound of the index range)."""
        text = self.prefix()
        while text:
            last = ord(text[-1]) + 1
            if last <= 0x10FFFF and not 0xD800 <= last <= 0xDFFF:
                return text[:-1] + chr(last)
            text = text[:-1]
        return None


@dataclass(frozen=True, slots=True)
class Between:
    """``low <= entry <= high``; None is an open end (DT keys: microseconds, UTC)."""

    low: int | None
    high: int | None


Term = Equal | Pattern | Between


def index_range(
    term: Pattern | Between, floor: Value | None = None
) -> tuple[Value | None, Value | None, bool]:
    """The stretch of the index a pattern or range term reads, as ``(low, high, high is
    exclusive)``, None an open end; ``floor`` (a keyset's last value) raises ``low``.

    A pattern reads from its literal prefix to :meth:`Pattern.above` (the pattern itself
    is still checked on each entry); a range reads its own bounds, inclusive. Both
    stores render this range in their SQL, so the keyset arithmetic lives here once.
    """
    low: Value | None
    high: Value | None
    if isinstance(term, Pattern):
        low = term.prefix() or None
        high = None if low is None else term.above()
        exclusive = True
    else:
        low, high, exclusive = term.low, term.high, False
    if floor is not None:
        low = floor if low is None else max(low, floor)
    return low, high, exclusive


@dataclass(frozen=True, slots=True)
class Condition:
    """Some entry of ``key`` satisfies one of ``terms``."""

    key: str
    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class Prefilter:
    """All of ``conditions`` hold for every workitem that matches the query."""

    conditions: tuple[Condition, ...]

    def driver(self) -> Condition | None:
        """The condition a store should read its index by (the most selective kind)."""
        if not self.conditions:
            return None
        return min(self.conditions, key=lambda c: KEY_ORDER[c.key])

    def others(self) -> tuple[Condition, ...]:
        """The conditions besides :meth:`driver`."""
        driver = self.driver()
        return tuple(c for c in self.conditions if c is not driver)


# --------------------------------------------------------------------------- entries


def _leaves(ds: Dataset, path: tuple[int, ...]) -> Iterator[DataElement]:
    tag = path[0]
    if tag not in ds:
        return
    elem = ds[tag]
    if len(path) == 1:
        yield elem
        return
    if elem.VR != "SQ" or not elem.value:
        return
    for item in elem.value:
        yield from _leaves(item, path[1:])


def _pn_entries(name: str) -> Iterator[str]:
    whole = _pn_norm(name)
    forms = [whole, *(g for g in whole.split("=") if g)] if "=" in whole else [whole]
    for form in forms:
        yield form.casefold()
        if not form.isascii():
            yield UNKNOWN


def index_entries(ds: Dataset) -> set[tuple[str, Value]]:
    """The ``(key, value)`` entries a store keeps for workitem ``ds``."""
    tz = _tz_of(ds)
    out: set[tuple[str, Value]] = set()
    for key in INDEX_KEYS:
        for elem in _leaves(ds, key.path):
            for value in _values(elem):
                if isinstance(value, bytes):
                    continue  # never equal to a text key
                text = _strip(key.vr, str(value))
                if not text:
                    continue
                if key.vr == "DT":
                    try:
                        out.add((key.name, int(_point("DT", text, tz))))
                    except _Invalid:
                        pass  # a malformed value matches no key
                elif key.vr == "PN":
                    out.update((key.name, form) for form in _pn_entries(text))
                else:
                    out.add((key.name, text))
    return out


# --------------------------------------------------------------------------- query


def compile_query(query: Dataset) -> Prefilter:
    """The conditions every match of the C-FIND identifier ``query`` satisfies."""
    tz = _tz_of(query)
    conditions: list[Condition] = []
    for key in INDEX_KEYS:
        terms = _terms(query, key.path, key, tz)
        if terms is not None:
            conditions.append(Condition(key.name, tuple(dict.fromkeys(terms))))
    return Prefilter(tuple(conditions))


def _terms(ds: Dataset, path: tuple[int, ...], key: IndexKey, tz: timezone) -> list[Term] | None:
    """The alternatives a query (item) allows for ``key``; None: unconstrained."""
    if path[0] not in ds:
        return None
    elem = ds[path[0]]
    if len(path) == 1:
        return _leaf_terms(elem, key, tz)
    if elem.VR != "SQ":
        return None
    items = list(elem.value or [])
    if not items or any(_all_universal(item) for item in items):
        return None  # C.2.2.2.6: matches every candidate
    out: list[Term] = []
    for item in items:
        sub = _terms(item, path[1:], key, tz)
        if sub is None:
            return None
        out += sub
    return out


def _leaf_terms(elem: DataElement, key: IndexKey, tz: timezone) -> list[Term] | None:
    if elem.VR != key.vr:
        return None  # another VR, another rule: matching decides
    values = _values(elem)
    if not values:
        return None  # universal
    terms: list[Term] = []
    for value in values:
        if not isinstance(value, str):
            return None
        found = _term(key.vr, value, tz)
        if found is None:
            return None
        terms += found
    return terms


def _term(vr: str, key: str, tz: timezone) -> list[Term] | None:
    if vr == "DT":
        if "-" in key:  # as matching._match_date_time reads it
            lo_text, hi_text = _split_range(vr, key)
            lo = _query_bounds(vr, lo_text, tz, upper=False) if lo_text else None
            hi = _query_bounds(vr, hi_text, tz, upper=True) if hi_text else None
            return [Between(lo, hi)]
        return [Equal(int(_query_bounds(vr, key, tz, upper=False)))]
    wild = vr in WILDCARD_VRS and ("*" in key or "?" in key)
    if vr == "PN":
        if not wild:
            return [Equal(_pn_norm(key).casefold())]
        if not key.isascii():
            return None
        return [Pattern(key.lower()), Equal(UNKNOWN)]
    if wild:
        return [Pattern(key)]
    return [Equal(key)]
