"""C-FIND key matching and return-key selection over pydicom Datasets.

This module owns the matching rules of PS3.4 C.2.2.2 (and C.2.2.3 for
multi-valued attributes) as the UPS service uses them (PS3.4 CC.2.8.3: "The SCP
shall support Attribute matching as described in C.2.2.2"), and the response
Identifier of PS3.4 CC.2.8.1.3.2.  It is pure: no I/O, no clock.  The same
functions decide Filtered Global Subscriptions (PS3.4 CC.2.3.3.1: "the same
matching logic used for C-FIND").

What we do, per matching type (the conformance-statement items of PS3.4
CC.4.2.1):

* **Universal** (C.2.2.2.3): a zero-length key matches everything, including a
  candidate that lacks the attribute.
* **Single value** (C.2.2.2.1): exact and case-sensitive after removing the
  padding that DICOM declares insignificant (leading/trailing spaces for AE,
  CS, SH, LO, PN, UC, DA, TM, DT, IS, DS; trailing spaces for ST, LT, UT, UR;
  trailing spaces and NULs for UI).  Numeric VRs compare by number (``1.0`` ==
  ``1``).  DA, TM and DT compare by meaning (C.2.2.2.1.3 note 1): ``TM 2230``
  matches ``223000``; a DT offset is honoured.
* **PN** (C.2.2.2.1.1): literal but case-insensitive (``str.casefold``);
  trailing empty components are ignored (``DOE^JOHN^^`` == ``DOE^JOHN``); a key
  without ``=`` also matches any single component group of a multi-group name.
* **Wild card** (C.2.2.2.4): ``*`` = any run (also empty), ``?`` = exactly one
  character, for AE, CS, LO, LT, PN, SH, ST, UC, UR, UT only; case-sensitive
  except PN.
* **List of UIDs** (C.2.2.2.2): a multi-valued key matches if any of its values
  matches; we apply the same "any value" rule to every VR (an extension).
* **Range** (C.2.2.2.5) for DA, TM, DT: ``a-b``, ``-b``, ``a-``, inclusive.  A
  partial bound covers its whole period: ``-1030`` includes 10:30:59.999999,
  ``2024-`` (DT) starts at 2024-01-01.  A DT without offset is read in the
  dataset's Timezone Offset From UTC (0008,0201), else in UTC.
* **Combined date-time range** (C.2.2.2.5.4): when a DA key ``xxxDate`` and its
  TM partner ``xxxTime`` carry ranges of the same form, they are matched as one
  DT range (the "combined datetime matching" of extended negotiation; on by
  default, ``combined_datetime=False`` turns it off).
* **Sequence** (C.2.2.2.6): an empty sequence, an empty item, or an item whose
  keys are all universal matches everything; otherwise some candidate item must
  match all keys of the query item (recursively).  Several query items are
  alternatives.
* C.2.2.3: a multi-valued candidate matches if any of its values matches.

Never matched: Specific Character Set (it only says how the other values are
encoded, and pydicom has already decoded them to ``str``), Timezone Offset From
UTC (it is context, see above) and Transaction UID (PS3.4 Table CC.2.5-3:
"Cannot be queried"; it is the UPS access lock and never leaves the SCP).

A malformed range or date/time in the *query* raises :class:`ServiceError`
with status A900 (PS3.4 C.4.1.1.4, "Identifier does not match SOP Class"); a
malformed candidate value simply does not match.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from ups.dimse.errors import MAX_ERROR_COMMENT
from ups.dimse.status import Status
from ups.services.errors import ServiceError

__all__ = ["WILDCARD_VRS", "matches", "select_return_keys"]

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_TRAILING_ONLY_VRS = frozenset({"ST", "LT", "UT", "UR"})
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "IS", "DS"})
_DATE_TIME_VRS = frozenset({"DA", "TM", "DT"})

SPECIFIC_CHARACTER_SET = 0x00080005
TIMEZONE_OFFSET_FROM_UTC = 0x00080201
TRANSACTION_UID = 0x00081195
_NOT_MATCHED = frozenset({SPECIFIC_CHARACTER_SET, TIMEZONE_OFFSET_FROM_UTC, TRANSACTION_UID})
_NEVER_RETURNED = frozenset({TRANSACTION_UID})

BAD_IDENTIFIER = Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS
_ELEMENT = 0xFFFF  # the element half of a tag
_US = timedelta(microseconds=1)
_EPOCH = datetime(1, 1, 2, tzinfo=UTC)


class _Invalid(ValueError):
    """A date/time value that does not parse."""


# --------------------------------------------------------------------------- public


def matches(candidate: Dataset, query: Dataset, *, combined_datetime: bool = True) -> bool:
    """Whether ``candidate`` matches every key of the C-FIND ``query``.

    See the module docstring for the rules (PS3.4 C.2.2.2).
    """
    return _matches(candidate, query, _tz_of(query), _tz_of(candidate), combined=combined_datetime)


def select_return_keys(candidate: Dataset, query: Dataset) -> Dataset:
    """The C-FIND response Identifier: the query's keys, valued from ``candidate``.

    PS3.4 CC.2.8.1.3.2: the response contains exactly the keys of the request
    (absent in the candidate -> zero length), never Transaction UID.  Sequence
    keys follow C.2.2.2.6: an empty key sequence (or an empty item) returns the
    whole candidate sequence; otherwise only the candidate items that match
    the key item, each reduced to the key item's attributes.

    Specific Character Set is kept simple: the response carries the
    candidate's Specific Character Set when it has one (the values are the
    candidate's), whether or not the query asked for it, and none otherwise.
    Timezone Offset From UTC is returned when requested and the candidate has
    one.
    """
    out = Dataset()
    if SPECIFIC_CHARACTER_SET in candidate:
        out.add(copy.deepcopy(candidate[SPECIFIC_CHARACTER_SET]))
    _fill(out, candidate, query, _tz_of(query), _tz_of(candidate))
    return out


# --------------------------------------------------------------------------- matching


def _matches(
    candidate: Dataset,
    query: Dataset,
    qtz: timezone,
    ctz: timezone,
    *,
    combined: bool = True,
) -> bool:
    pairs = _combined_pairs(query) if combined else {}
    partners = set(pairs.values())
    for qelem in query:
        tag = int(qelem.tag)
        if _skip(tag) or tag in partners:
            continue
        if tag in pairs:
            if not _match_combined(candidate, query, tag, pairs[tag], qtz, ctz):
                return False
            continue
        if not _match_element(_get(candidate, tag), qelem, qtz, ctz):
            return False
    return True


def _skip(tag: int) -> bool:
    group, element = tag >> 16, tag & _ELEMENT
    return tag in _NOT_MATCHED or group == 0 or element == 0


def _get(ds: Dataset, tag: int) -> DataElement | None:
    return ds[tag] if tag in ds else None


def _match_element(
    celem: DataElement | None, qelem: DataElement, qtz: timezone, ctz: timezone
) -> bool:
    if qelem.VR == "SQ":
        return _match_sequence(celem, qelem, qtz, ctz)
    qvals = _values(qelem)
    if not qvals:
        return True  # universal matching
    if celem is None:
        return False
    cvals = _values(celem)
    vr = _vr(qelem, celem)
    return any(_match_value(vr, q, c, qtz, ctz) for q in qvals for c in cvals)


def _match_sequence(
    celem: DataElement | None, qelem: DataElement, qtz: timezone, ctz: timezone
) -> bool:
    qitems = list(qelem.value or [])
    if not qitems or any(_all_universal(item) for item in qitems):
        return True
    if celem is None or celem.VR != "SQ" or not celem.value:
        return False
    return any(_matches(ci, qi, qtz, ctz) for qi in qitems for ci in celem.value)


def _all_universal(item: Dataset) -> bool:
    for elem in item:
        if _skip(int(elem.tag)):
            continue
        if elem.VR == "SQ":
            if not _match_sequence(None, elem, UTC, UTC):
                return False
        elif _values(elem):
            return False
    return True


def _vr(qelem: DataElement, celem: DataElement | None) -> str:
    vr = str(qelem.VR)
    if (vr == "UN" or " or " in vr) and celem is not None:
        vr = str(celem.VR)
    return vr


def _values(elem: DataElement) -> list[Any]:
    """The non-empty values of an element, padding removed (C.2.2.2.1)."""
    value = elem.value
    if value is None:
        return []
    raw: list[Any] = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    out: list[Any] = []
    for v in raw:
        if v is None:
            continue
        if isinstance(v, (int, float)):
            out.append(v)
            continue
        if isinstance(v, bytes):
            if v:
                out.append(v)
            continue
        s = _strip(str(elem.VR), str(v))
        if s:
            out.append(s)
    return out


def _strip(vr: str, s: str) -> str:
    if vr in _TRAILING_ONLY_VRS:
        return s.rstrip(" \x00")
    return s.strip(" \x00")


def _match_value(vr: str, q: Any, c: Any, qtz: timezone, ctz: timezone) -> bool:
    if vr in _NUMERIC_VRS:
        try:
            return float(q) == float(c)
        except (TypeError, ValueError):
            return False
    if isinstance(q, bytes) or isinstance(c, bytes):
        return bool(q == c)
    qs, cs = str(q), _strip(vr, str(c))
    if vr in WILDCARD_VRS and ("*" in qs or "?" in qs):
        return _match_wildcard(vr, qs, cs)
    if vr == "PN":
        return any(_pn_norm(qs).casefold() == form.casefold() for form in _pn_forms(qs, cs))
    if vr in _DATE_TIME_VRS:
        return _match_date_time(vr, qs, cs, qtz, ctz)
    return qs == cs


# --------------------------------------------------------------------------- wildcards, PN


@lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts: list[str] = []
    for ch in re.sub(r"\*+", "*", pattern):
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _match_wildcard(vr: str, pattern: str, value: str) -> bool:
    if vr != "PN":
        return _wildcard(pattern, False).fullmatch(value) is not None
    rx = _wildcard(pattern, True)
    return any(rx.fullmatch(form) is not None for form in _pn_forms(pattern, value))


def _pn_norm(name: str) -> str:
    groups = [g.strip().rstrip("^").rstrip() for g in name.strip().split("=")]
    return "=".join(groups).rstrip("=")


def _pn_forms(key: str, name: str) -> list[str]:
    """The forms of a candidate name a key is compared with (C.2.2.2.1.1 note)."""
    whole = _pn_norm(name)
    forms = [whole]
    if "=" not in key and "=" in whole:
        forms.extend(g for g in whole.split("=") if g)
    return forms


# --------------------------------------------------------------------------- dates and times

_DA_RX = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")
_TM_RX = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?")
_DT_PAT = r"\d{4}(?:\d{2}){0,5}(?:\.\d{1,6})?(?:[+-]\d{4})?"
_DT_RX = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?"
)
_DT_RANGE_RX = re.compile(rf"\s*({_DT_PAT})?\s*-\s*({_DT_PAT})?\s*")


def _tz_of(ds: Dataset) -> timezone:
    """The Timezone Offset From UTC (0008,0201) of a dataset, else UTC."""
    if TIMEZONE_OFFSET_FROM_UTC in ds:
        vals = _values(ds[TIMEZONE_OFFSET_FROM_UTC])
        if vals:
            m = re.fullmatch(r"([+-])(\d{2})(\d{2})", str(vals[0]))
            if m:
                sign = -1 if m.group(1) == "-" else 1
                return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    return UTC


def _da_key(s: str) -> str:
    m = _DA_RX.fullmatch(s.strip())
    if not m:
        raise _Invalid(s)
    return "".join(m.groups())


def _tm_bounds(s: str) -> tuple[int, int]:
    """(first, last) microsecond of the day covered by a possibly partial TM."""
    m = _TM_RX.fullmatch(s.strip())
    if not m:
        raise _Invalid(s)
    hh, mm, ss, frac = m.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:
        raise _Invalid(s)
    lo = ((int(hh) * 60 + int(mm or 0)) * 60 + int(ss or 0)) * 1_000_000
    if frac:
        lo += int(frac.ljust(6, "0"))
        span = 10 ** (6 - len(frac))
    else:
        span = 3_600_000_000 if mm is None else 60_000_000 if ss is None else 1_000_000
    return lo, lo + span - 1


def _dt_bounds(s: str, default_tz: timezone) -> tuple[int, int]:
    """(first, last) microsecond (UTC, from an epoch) covered by a partial DT."""
    m = _DT_RX.fullmatch(s.strip())
    if not m:
        raise _Invalid(s)
    year, month, day, hour, minute, sec, frac, sign, oh, om = m.groups()
    if frac is not None and sec is None:
        raise _Invalid(s)
    tz = default_tz
    if sign is not None:
        tz = timezone((-1 if sign == "-" else 1) * timedelta(hours=int(oh), minutes=int(om)))
    try:
        start = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            min(int(sec or 0), 59),
            int((frac or "0").ljust(6, "0")),
            tzinfo=tz,
        )
        if month is None:
            end = start.replace(year=start.year + 1)
        elif day is None:
            end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        elif hour is None:
            end = start + timedelta(days=1)
        elif minute is None:
            end = start + timedelta(hours=1)
        elif sec is None:
            end = start + timedelta(minutes=1)
        elif frac is None:
            end = start + timedelta(seconds=1)
        else:
            end = start + timedelta(microseconds=10 ** (6 - len(frac)))
        lo = (start - _EPOCH) // _US
        hi = (end - _EPOCH) // _US - 1
    except (ValueError, OverflowError) as exc:
        raise _Invalid(s) from exc
    return lo, hi


def _split_range(vr: str, key: str) -> tuple[str, str]:
    if vr == "DT":
        m = _DT_RANGE_RX.fullmatch(key)
        if not m:
            raise _bad_key(key)
        return m.group(1) or "", m.group(2) or ""
    parts = key.split("-")
    if len(parts) != 2:
        raise _bad_key(key)
    return parts[0].strip(), parts[1].strip()


def _bad_key(key: str) -> ServiceError:
    return ServiceError(BAD_IDENTIFIER, f"invalid date/time key {key!r}"[:MAX_ERROR_COMMENT])


def _query_bounds(vr: str, text: str, tz: timezone, *, upper: bool) -> Any:
    try:
        if vr == "DA":
            return _da_key(text)
        if vr == "TM":
            return _tm_bounds(text)[1 if upper else 0]
        return _dt_bounds(text, tz)[1 if upper else 0]
    except _Invalid as exc:
        raise _bad_key(text) from exc


def _point(vr: str, text: str, tz: timezone) -> Any:
    if vr == "DA":
        return _da_key(text)
    if vr == "TM":
        return _tm_bounds(text)[0]
    return _dt_bounds(text, tz)[0]


def _match_date_time(vr: str, key: str, value: str, qtz: timezone, ctz: timezone) -> bool:
    if "-" in key:
        lo_text, hi_text = _split_range(vr, key)
        lo = _query_bounds(vr, lo_text, qtz, upper=False) if lo_text else None
        hi = _query_bounds(vr, hi_text, qtz, upper=True) if hi_text else None
        try:
            point = _point(vr, value, ctz)
        except _Invalid:
            return False
        return (lo is None or lo <= point) and (hi is None or point <= hi)
    want = _query_bounds(vr, key, qtz, upper=False)
    try:
        return bool(_point(vr, value, ctz) == want)
    except _Invalid:
        return False


# --------------------------------------------------------------------------- combined DA+TM


def _combined_pairs(query: Dataset) -> dict[int, int]:
    """DA key tag -> TM key tag for ``xxxDate``/``xxxTime`` pairs of equal range form."""
    pairs: dict[int, int] = {}
    for elem in query:
        if elem.VR != "DA":
            continue
        keyword = keyword_for_tag(elem.tag)
        if not keyword.endswith("Date"):
            continue
        tm_tag = tag_for_keyword(keyword[:-4] + "Time")
        if tm_tag is None or tm_tag not in query or dictionary_VR(tm_tag) != "TM":
            continue
        da_vals, tm_vals = _values(elem), _values(query[tm_tag])
        if len(da_vals) != 1 or len(tm_vals) != 1:
            continue
        da, tm = str(da_vals[0]), str(tm_vals[0])
        if "-" in da and "-" in tm and _form(da) == _form(tm):
            pairs[int(elem.tag)] = tm_tag
    return pairs


def _form(key: str) -> tuple[bool, bool]:
    lo, _, hi = key.partition("-")
    return bool(lo.strip()), bool(hi.strip())


def _digits(tm: str) -> str:
    return tm.strip().replace(":", "")


def _match_combined(
    candidate: Dataset, query: Dataset, da_tag: int, tm_tag: int, qtz: timezone, ctz: timezone
) -> bool:
    da_lo, da_hi = (p.strip() for p in str(_values(query[da_tag])[0]).split("-", 1))
    tm_lo, tm_hi = (p.strip() for p in str(_values(query[tm_tag])[0]).split("-", 1))
    try:
        lo = _dt_bounds(_da_key(da_lo) + _digits(tm_lo), qtz)[0] if da_lo else None
        hi = _dt_bounds(_da_key(da_hi) + _digits(tm_hi), qtz)[1] if da_hi else None
    except _Invalid as exc:
        raise _bad_key(f"{da_lo}-{da_hi} {tm_lo}-{tm_hi}") from exc
    celem = _get(candidate, da_tag)
    dates = _values(celem) if celem is not None else []
    if not dates:
        return False
    telem = _get(candidate, tm_tag)
    times = _values(telem) if telem is not None else []
    try:
        point = _dt_bounds(_da_key(str(dates[0])) + (_digits(str(times[0])) if times else ""), ctz)
    except _Invalid:
        return False
    return (lo is None or lo <= point[0]) and (hi is None or point[0] <= hi)


# --------------------------------------------------------------------------- return keys


def _fill(out: Dataset, candidate: Dataset, query: Dataset, qtz: timezone, ctz: timezone) -> None:
    for qelem in query:
        tag = int(qelem.tag)
        if tag in _NEVER_RETURNED or tag == SPECIFIC_CHARACTER_SET or _skip_group(tag):
            continue
        celem = _get(candidate, tag)
        if qelem.VR == "SQ":
            out.add(DataElement(tag, "SQ", _return_items(celem, qelem, qtz, ctz)))
        elif celem is not None:
            out.add(copy.deepcopy(celem))
        else:
            out.add(DataElement(tag, _vr(qelem, None), None))


def _skip_group(tag: int) -> bool:
    return (tag >> 16) == 0 or (tag & _ELEMENT) == 0


def _return_items(
    celem: DataElement | None, qelem: DataElement, qtz: timezone, ctz: timezone
) -> Sequence:
    if celem is None or celem.VR != "SQ" or not celem.value:
        return Sequence([])
    qitems = list(qelem.value or [])
    if not qitems or all(len(item) == 0 for item in qitems):
        return Sequence([copy.deepcopy(item) for item in celem.value])
    selected: list[Dataset] = []
    for citem in celem.value:
        for qitem in qitems:
            if _matches(citem, qitem, qtz, ctz):
                reduced = Dataset()
                _fill(reduced, citem, qitem, qtz, ctz)
                selected.append(reduced)
                break
    return Sequence(selected)
