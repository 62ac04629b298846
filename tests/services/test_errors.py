"""One error root in services: UPSError, under the package's DicomError."""

from __future__ import annotations

import pytest

from ups.dimse.status import Status
from ups.errors import DicomError
from ups.services.errors import AddressError, ConfigError, ServiceError, UPSError, UPSFailure


@pytest.mark.parametrize("cls", [ServiceError, UPSFailure, ConfigError, AddressError])
def test_one_root(cls: type[Exception]) -> None:
    assert issubclass(cls, UPSError) and issubclass(UPSError, DicomError)


def test_address_errors_are_value_errors() -> None:
    assert issubclass(AddressError, ValueError)


def test_a_warning_is_decided_by_its_category() -> None:
    assert ServiceError(Status.UPS_ALREADY_COMPLETED).is_warning
    assert ServiceError(Status.ATTRIBUTE_LIST_ERROR).is_warning  # 0107: Warning, not Bxxx
    assert ServiceError(0xB123).is_warning  # an unknown Bxxx: Warning by PS3.7 C.1
    assert not ServiceError(Status.UPS_NO_SUCH_INSTANCE).is_warning
    assert str(ServiceError(Status.UPS_NO_SUCH_INSTANCE, "gone")) == "0xC307: gone"
    with pytest.raises(ValueError):
        ServiceError(0x10000)


def test_failure_names_its_status() -> None:
    failure = UPSFailure("get", Status.UPS_NO_SUCH_INSTANCE, "no such UPS")
    assert failure.status == 0xC307 and failure.meaning.startswith("C307 Failure")
    assert str(failure).startswith("get failed: status C307 Failure") and "no such UPS" in str(
        failure
    )
