"""The status table (ups.dimse.status) against PS3.7 Annex C and PS3.4 Annex CC."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ups.dimse.status import STATUSES, StatusCategory, category_of, describe, status_info

# Every UPS status of PS3.4 Annex CC (Tables CC.2.1-2 … CC.2.7-1).
UPS_WARNINGS = [0xB300, 0xB301, 0xB304, 0xB305, 0xB306]
UPS_FAILURES = (
    [0xC300, 0xC301, 0xC302, 0xC303, 0xC304]
    + list(range(0xC307, 0xC30A))
    + list(range(0xC310, 0xC316))
)
GENERAL_FAILURES = [
    0x0105, 0x0106, 0x0110, 0x0111, 0x0112, 0x0113, 0x0114, 0x0115, 0x0117, 0x0118,
    0x0119, 0x0120, 0x0121, 0x0122, 0x0123, 0x0124, 0x0210, 0x0211, 0x0212, 0x0213,
]  # fmt: skip


@pytest.mark.parametrize("code", UPS_WARNINGS)
def test_ups_warnings(code: int) -> None:
    assert code in STATUSES
    assert status_info(code).category is StatusCategory.WARNING


@pytest.mark.parametrize("code", UPS_FAILURES + GENERAL_FAILURES)
def test_named_failures(code: int) -> None:
    assert code in STATUSES
    assert status_info(code).category is StatusCategory.FAILURE
    assert status_info(code).is_failure


def test_ups_has_no_c305_c306() -> None:
    assert 0xC305 not in STATUSES and 0xC306 not in STATUSES


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (0x0000, StatusCategory.SUCCESS),
        (0x0001, StatusCategory.WARNING),
        (0x0107, StatusCategory.WARNING),
        (0x0116, StatusCategory.WARNING),
        (0xB000, StatusCategory.WARNING),
        (0xB123, StatusCategory.WARNING),
        (0xFE00, StatusCategory.CANCEL),
        (0xFF00, StatusCategory.PENDING),
        (0xFF01, StatusCategory.PENDING),
        (0xA700, StatusCategory.FAILURE),
        (0xA7FF, StatusCategory.FAILURE),
        (0xA9AB, StatusCategory.FAILURE),
        (0xCFFF, StatusCategory.FAILURE),
        (0x0199, StatusCategory.FAILURE),
        (0xFF02, StatusCategory.FAILURE),
    ],
)
def test_categories(code: int, category: StatusCategory) -> None:
    assert status_info(code).category is category
    assert category_of(code) is category


def test_ranges_and_unknown_meanings() -> None:
    assert "Out of resources" in status_info(0xA7AB).meaning
    assert "does not match" in status_info(0xA9FF).meaning
    assert "Unable to process" in status_info(0xC000).meaning
    assert status_info(0x0199).meaning == "Unknown failure status"
    # A UPS code keeps its UPS meaning although 0xCxxx is "unable to process" elsewhere.
    assert "Transaction UID" in status_info(0xC301).meaning


def test_describe_format() -> None:
    assert (
        describe(0xC301) == "C301 Failure - Refused: The correct Transaction UID was not provided"
    )
    assert describe(0x0000) == "0000 Success - Success"
    assert describe(0xFF00).startswith("FF00 Pending - ")


def test_table_categories_agree_with_ranges() -> None:
    for code, status in STATUSES.items():
        assert status.code == code
        assert category_of(code) is status.category, hex(code)


@given(st.integers(0, 0xFFFF))
def test_any_code_is_described(code: int) -> None:
    text = describe(code)
    assert text.startswith(f"{code:04X} ")


def test_out_of_range() -> None:
    with pytest.raises(ValueError):
        status_info(0x10000)


def test_status_enum_names_every_code_of_the_table_once() -> None:
    from ups.dimse.status import STATUSES, Status, StatusCategory

    assert {int(member) for member in Status} == set(STATUSES)
    assert Status(0xC302) is Status.UPS_ALREADY_IN_PROGRESS
    assert Status.UPS_ALREADY_COMPLETED.category is StatusCategory.WARNING
    assert Status.PENDING_WARNING.category is StatusCategory.PENDING
    assert Status.CANCEL.meaning == "Operation terminated due to a Cancel request"
    assert int(Status.SUCCESS) == 0 and isinstance(Status.SUCCESS, int)
