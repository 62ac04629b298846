"""PS3.5 value rules, in one place: what a UID, an AE title, a date or a code may look like.

pydicom stores whatever it is given and, for a value it finds invalid, prints a
``UserWarning`` (and may silently change the VR of an over-long value to UN). A UPS
worklist must not store, send or report such values, and a user must get one clear
line, not a library's warning. So every layer that takes a value from a person or a
peer asks here first:

* ``uid_problem``: PS3.5 §9.1 (digits and dots, no empty component, no leading zero,
  at most 64 characters);
* ``value_problem``: one value of a string VR against PS3.5 Table 6.2-1 (maximum
  length, character repertoire, the DA/TM/DT forms, the IS/DS number forms);
* ``dataset_problems``: every value of a pydicom ``Dataset``, sequences included, plus
  the defined terms PS3.4 Annex CC gives the UPS attributes (``DEFINED_TERMS``);
* ``term_problem``: one value against those defined terms (``-state``, a matching key).

Each returns the problem in a few words (or None), short enough for an Error Comment
(LO, 64 characters) once the caller has named the attribute.

``quiet_pydicom`` is where pydicom's own ``UserWarning`` lines go instead of stderr:
every place that builds or decodes a data set from someone else's values wraps that
in it and reports the problems these rules find, in its own words.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

MAX_UID_LENGTH: Final = 64
# Possessive and non-capturing: the same language in half the time (the listener checks
# every event's UID).
_UID: Final = re.compile(r"(?:0|[1-9][0-9]*+)(?:\.(?:0|[1-9][0-9]*+))*+")

MAX_LENGTH: Final[dict[str, int]] = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UI": 64,
}
"""PS3.5 Table 6.2-1: the longest value of each string VR (characters, per value).
PN is limited per component group (64); UC, UR and UT only by the value length field."""

_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORMS: Final[dict[str, re.Pattern[str]]] = {
    "AE": re.compile(r"[^\\\x00-\x1f\x7f]*"),
    "AS": re.compile(r"[0-9]{3}[DWMY]"),
    "CS": re.compile(r"[A-Z0-9_ ]*"),
    "DA": re.compile(r"[0-9]{8}"),
    "TM": re.compile(r"([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?"),
    "DT": re.compile(
        r"[0-9]{4}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?)?)?)?([+-][0-9]{4})?"
    ),  # noqa: E501
    "IS": re.compile(r" *[+-]?[0-9]+ *"),
    "DS": re.compile(r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *"),
}
"""The character repertoire or form of a value (PS3.5 Table 6.2-1)."""

_RANGE_FORMS: Final = frozenset({"DA", "TM", "DT"})

DEFINED_TERMS: Final[dict[str, frozenset[str]]] = {
    "ProcedureStepState": frozenset({"SCHEDULED", "IN PROGRESS", "CANCELED", "COMPLETED"}),
    "InputReadinessState": frozenset({"READY", "UNAVAILABLE", "INCOMPLETE"}),
    "ScheduledProcedureStepPriority": frozenset({"HIGH", "MEDIUM", "LOW"}),
    "InputAvailabilityFlag": frozenset({"COMPLETE", "PARTIAL", "UNAVAILABLE"}),
}
"""Enumerated values PS3.4 Annex CC (Table CC.2.5-3) gives the UPS attributes."""


_WILDCARDS: Final = frozenset("*?")


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Run a block that makes pydicom judge values without its ``UserWarning`` lines.

    pydicom warns (and logs) when it stores, reads or writes a value PS3.5 does not
    allow. Those lines name site-packages paths and say nothing a user can act on, so
    they never reach stderr: callers check values with :func:`dataset_problems` and
    report in their own words. ``warnings.catch_warnings`` changes process-wide state,
    so a block should hold pydicom work only, and the SCP keeps all of it on one thread.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def uid_problem(uid: str) -> str | None:
    """What is wrong with ``uid`` as a PS3.5 §9.1 UID, or None."""
    if not uid:
        return "empty UID"
    if len(uid) > MAX_UID_LENGTH:
        return f"UID of {len(uid)} characters (at most {MAX_UID_LENGTH})"
    if not _UID.fullmatch(uid):
        if uid.strip(".0123456789"):
            return "UID with characters other than digits and dots"
        return "UID with an empty or zero-led component"
    return None


def value_problem(vr: str, value: str, *, query: bool = False) -> str | None:
    """What is wrong with one ``value`` of a string ``vr``, or None.

    ``query``: a C-FIND key, where wildcards (``*``, ``?``) and date/time ranges
    (``A-B``) are allowed (PS3.4 C.2.2.2). An empty value is always allowed: it is an
    empty attribute (or, in a query, universal matching).
    """
    if vr == "UI":  # an empty value is an empty attribute (Type 2), not a bad UID
        return None if value == "" else uid_problem(value)
    if vr == "PN":
        return _person_name_problem(value)
    form = _FORMS.get(vr)
    if query and vr in _RANGE_FORMS and "-" in value and form is not None:
        return _range_problem(vr, value, form)  # PS3.4 C.2.2.2.5: each end is a value
    limit = MAX_LENGTH.get(vr)
    if limit is not None and len(value) > limit:
        return f"{vr} value of {len(value)} characters (at most {limit})"
    if vr in ("LO", "SH", "ST", "LT", "UC", "UT") and _CONTROL.search(value):
        return f"{vr} value with a control character"
    if form is None or value == "" or (query and ("*" in value or "?" in value)):
        return None
    if not form.fullmatch(value):
        return f"{vr} value {_shown(value)} is not in the PS3.5 form"
    return None


def term_problem(keyword: str, value: str, *, query: bool = False) -> str | None:
    """What is wrong with ``value`` as one of the defined terms of ``keyword``, or None.

    Attributes without defined terms (``DEFINED_TERMS``) and empty values pass; in a
    query a value with a wildcard is left to matching (PS3.4 C.2.2.2.4).
    """
    terms = DEFINED_TERMS.get(keyword)
    if terms is None or not value or value in terms:
        return None
    if query and not _WILDCARDS.isdisjoint(value):
        return None
    return f"{_shown(value)} is not one of {'/'.join(sorted(terms))}"


def dataset_problems(ds: Dataset, *, query: bool = False, terms: bool = True) -> Iterator[str]:
    """Every invalid value in ``ds`` (items of sequences too), as ``"Keyword: problem"``.

    Checks the UPS defined terms (``DEFINED_TERMS``) as well, unless ``terms`` is false
    (an N-ACTION whose state machine answers a wrong term itself). A value of a known
    string attribute that arrived as UN (pydicom writes an over-long value so) is read
    as text and judged by the VR the dictionary gives it. pydicom's own warnings about
    the values it converts on the way are silenced: this is the report.
    """
    with quiet_pydicom():
        elements = list(ds)
        for elem in elements:
            yield from _element_problems(elem, query=query, terms=terms)


def _element_problems(elem: DataElement, *, query: bool, terms: bool) -> Iterator[str]:
    vr = str(elem.VR)
    name = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
    if vr == "SQ":
        for item in elem.value or ():
            yield from dataset_problems(item, query=query, terms=terms)
        return
    values: Iterator[str] = _strings(elem.value)
    if vr == "UN" and isinstance(elem.value, bytes) and elem.keyword:
        known = str(dictionary_VR(elem.tag)).split(" or ")[0]
        if known in MAX_LENGTH or known == "PN":
            vr, values = known, _un_strings(elem.value)
    for value in values:
        problem = value_problem(vr, value, query=query)
        if problem is None and terms:
            problem = term_problem(name, value, query=query)
        if problem is not None:
            yield f"{name}: {problem}"
            return


def _un_strings(raw: bytes) -> Iterator[str]:
    text = raw.decode("latin-1").rstrip(" \x00")
    yield from text.split("\\")


def _strings(value: object) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, (str, PersonName)):
        yield str(value)
    elif isinstance(value, (MultiValue, list, tuple)):
        for item in value:
            if isinstance(item, (str, PersonName)):
                yield str(item)


def _person_name_problem(value: str) -> str | None:
    for group in value.split("="):
        if len(group) > 64:
            return f"PN component group of {len(group)} characters (at most 64)"
    if _CONTROL.search(value):
        return "PN value with a control character"
    if value.count("=") > 2 or any(group.count("^") > 4 for group in value.split("=")):
        return "PN value with too many components"
    return None


def _range_problem(vr: str, value: str, form: re.Pattern[str]) -> str | None:
    if vr == "DT":  # a DT may carry a "-hhmm" offset: split on the range's own hyphen
        low, _, high = value.partition("-") if value.count("-") == 1 else ("", "", value)
    else:
        low, _, high = value.partition("-")
    if not low and not high:
        return f"{vr} range {_shown(value)} has no bound"
    for part in (low, high):
        if part and (len(part) > MAX_LENGTH[vr] or not form.fullmatch(part)):
            return f"{vr} range {_shown(value)} is not in the PS3.5 form"
    return None


def _shown(value: str, width: int = 20) -> str:
    return repr(value if len(value) <= width else value[:width] + "...")
