"""The recording pynetdicom UPS SCP the CLI tests talk to: one per test module, reset
before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.pynetdicom_scp import PynetdicomUPSSCP


@pytest.fixture(scope="module")
def scp_server() -> Iterator[PynetdicomUPSSCP]:
    with PynetdicomUPSSCP() as scp:
        yield scp


@pytest.fixture()
def scp(scp_server: PynetdicomUPSSCP) -> PynetdicomUPSSCP:
    scp_server.reset()
    return scp_server
