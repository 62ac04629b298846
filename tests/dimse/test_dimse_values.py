"""PS3.5 value rules (ups.dimse.values): each rule at its limit and past it."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from ups.dimse.values import dataset_problems, uid_problem, value_problem


@pytest.mark.parametrize(
    "uid",
    ["1.2.840.10008.5.1.4.34.6.1", "0", "2.25.0", "1." + "2" * 62],
)
def test_valid_uids(uid: str) -> None:
    assert uid_problem(uid) is None


@pytest.mark.parametrize(
    ("uid", "why"),
    [
        ("", "empty"),
        ("abc", "characters other than digits"),
        ("bad uid with spaces", "characters other than digits"),
        ("..", "empty or zero-led"),
        ("1..2", "empty or zero-led"),
        ("1.02", "empty or zero-led"),
        (".1", "empty or zero-led"),
        ("/etc/passwd", "characters other than digits"),
        ("../x", "characters other than digits"),
        ("1.2\x00", "characters other than digits"),
        ("1." + "2" * 63, "65 characters"),
        ("1." * 41 + "1", "83 characters"),
    ],
)
def test_invalid_uids(uid: str, why: str) -> None:
    problem = uid_problem(uid)
    assert problem is not None and why in problem and len(problem) <= 64


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=8))
def test_generated_uids_are_valid_when_short_enough(parts: list[int]) -> None:
    uid = ".".join(map(str, parts))
    assert (uid_problem(uid) is None) == (len(uid) <= 64)


@pytest.mark.parametrize(
    ("vr", "value", "ok"),
    [
        ("CS", "SCHEDULED", True),
        ("CS", "IN PROGRESS", True),
        ("CS", "scheduled", False),
        ("CS", "A" * 16, True),
        ("CS", "A" * 17, False),
        ("LO", "x" * 64, True),
        ("LO", "x" * 65, False),
        ("LO", "a\x01b", False),
        ("SH", "x" * 16, True),
        ("SH", "x" * 17, False),
        ("AE", "STORESCP", True),
        ("AE", "A\\B", False),
        ("DA", "20261205", True),
        ("DA", "2026-12-05", False),
        ("TM", "235959.123456", True),
        ("TM", "1230", True),
        ("TM", "2460", False),
        ("DT", "20261205123000+0100", True),
        ("DT", "2026120512300", False),
        ("IS", "-12", True),
        ("IS", "1.5", False),
        ("DS", "1.5e3", True),
        ("DS", "abc", False),
        ("PN", "Doe^Jane", True),
        ("PN", "x" * 64, True),
        ("PN", "x" * 65, False),
        ("PN", "a^b^c^d^e^f", False),
        ("UI", "1.2.3", True),
        ("UI", "1.2.x", False),
    ],
)
def test_values(vr: str, value: str, ok: bool) -> None:
    assert (value_problem(vr, value) is None) is ok, value_problem(vr, value)


@pytest.mark.parametrize(
    ("vr", "value", "ok"),
    [
        ("DA", "20260101-20261231", True),
        ("DA", "-20261231", True),
        ("DA", "20260101-", True),
        ("DA", "2026-1231", False),
        ("TM", "0800-1700", True),
        ("LO", "item7*", True),
        ("CS", "SCHED?LED", True),
        ("UI", "", True),
    ],
)
def test_query_keys_allow_wildcards_and_ranges(vr: str, value: str, ok: bool) -> None:
    assert (value_problem(vr, value, query=True) is None) is ok


def test_dataset_problems_walk_sequences_and_defined_terms_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns as these are set; that is its part
        ds = Dataset()
        ds.ProcedureStepState = "scheduled"
        ds.ScheduledProcedureStepPriority = "MEDIUM"
        item = Dataset()
        item.CodeValue = "x" * 20
        ds.ScheduledWorkitemCodeSequence = [item]
        ds.PatientName = "x" * 100
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checking them prints nothing
        problems = list(dataset_problems(ds))
    assert problems == [  # in tag order
        "PatientName: PN component group of 100 characters (at most 64)",
        "CodeValue: SH value of 20 characters (at most 16)",
        "ProcedureStepState: CS value 'scheduled' is not in the PS3.5 form",
    ]
    ds.ProcedureStepState = "PENDING"
    assert any("is not one of" in p for p in dataset_problems(ds))


def _uid_by_components(uid: str) -> bool:
    """PS3.5 §9.1 read literally: components of digits, no leading zero, one dot apart."""
    parts = uid.split(".")
    return all(p.isascii() and p.isdigit() and (p == "0" or p[0] != "0") for p in parts)


@given(st.text("0123456789.x", max_size=20))
def test_uid_syntax_is_the_component_rule(uid: str) -> None:
    """The UID pattern (possessive, for speed) accepts exactly the component rule."""
    syntactic = len(uid) <= 64 and uid != ""
    assert (uid_problem(uid) is None) == (syntactic and _uid_by_components(uid))
