"""The SCP refuses what PS3.5 does not allow, from real peers over a socket, and stores none of it.

Each malformed instance UID shape of issue 12 is sent as the Affected SOP Instance UID of
an N-CREATE: by pynetdicom (a peer this project did not write) where it will send it, and
by our own association for what pynetdicom refuses to send (a UID over 64 characters).
Each must be answered 0117 Invalid SOP Instance and leave the store empty. Values that
break their VR or a UPS defined term are 0106 Invalid Attribute Value, and every Error
Comment fits its 64 characters.
"""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

pytest.importorskip("pynetdicom")

from tests.services.scp.test_pynetdicom import (  # noqa: E402
    PNClient,
    new_workitem,
    state,
    with_tuid,
)
from tests.services.scp.test_service import client, scp_options  # noqa: E402
from ups.dimse.datasets import EXPLICIT_VR_LITTLE_ENDIAN, encode_dataset  # noqa: E402
from ups.dimse.messages import NCreateRQ, NGetRQ  # noqa: E402
from ups.services.scp import UPSSCP  # noqa: E402
from ups.services.scu import with_create_defaults  # noqa: E402
from ups.services.uids import UPS_PULL, UPS_PUSH  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

MALFORMED = {
    "letters": "abc",
    "spaces": "bad uid with spaces",
    "dots": "..",
    "relative path": "../../etc/1.2.3",
    "absolute path": "/etc/passwd",
    "NUL": "1.2\x003.4",
    "65 characters": "1.2." + "3" * 61,
    "84 characters": "1.2." + "3" * 80,
}
"""The shapes issue 12 lists, each a UID PS3.5 §9.1 does not allow."""


@pytest.fixture
async def scp(tmp_path: Path) -> AsyncIterator[UPSSCP]:
    async with UPSSCP(scp_options(tmp_path / "ups.db", {})) as s:
        yield s


@contextmanager
def pynetdicom_warns() -> Iterator[None]:
    """pynetdicom and pydicom warn as they build what the test sends wrong on purpose.

    That is the peer's part; the SCP's own decoding stays under the session's
    ``error::UserWarning`` wherever our own peer sends the same bytes.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def stored_rows(scp: UPSSCP) -> int:
    with sqlite3.connect(str(scp.options.db)) as db:
        return int(db.execute("SELECT COUNT(*) FROM workitems").fetchone()[0])


@pytest.mark.parametrize("shape", list(MALFORMED))
async def test_a_malformed_instance_uid_is_refused_and_not_stored(scp: UPSSCP, shape: str) -> None:
    uid = MALFORMED[shape]
    if len(uid) <= 64:  # pynetdicom sends any UID of 1-64 characters
        pn = await asyncio.to_thread(PNClient, scp.port)
        try:
            with pynetdicom_warns():
                assert await pn.create(uid, new_workitem()) == 0x0117
                status, _ = await pn.get(uid, [])
            assert status == 0x0117
        finally:
            await pn.close()
    async with await client(scp.port) as scu:  # and our own peer, for every shape
        association = scu.association
        context = association.context_for(UPS_PUSH)
        raw = encode_dataset(with_create_defaults(new_workitem()), context.transfer_syntax)
        rq = NCreateRQ(association.new_message_id(), UPS_PUSH, uid, dataset=raw)
        rsp = await association.request(rq, context.context_id)
        assert rsp.status == 0x0117
        assert rsp.error_comment is not None and rsp.error_comment.startswith("(0000,1000) ")
        assert len(rsp.error_comment) <= 64
        get = NGetRQ(association.new_message_id(), UPS_PUSH, uid)
        assert (await association.request(get, context.context_id)).status == 0x0117
    assert stored_rows(scp) == 0


async def test_a_malformed_sop_instance_uid_in_the_data_set_is_refused(scp: UPSSCP) -> None:
    pn = await asyncio.to_thread(PNClient, scp.port)
    try:
        with pynetdicom_warns():
            ds = new_workitem()
            ds.SOPInstanceUID = "1.2.abc"
            assert await pn.create(str(generate_uid()), ds) == 0x0117
    finally:
        await pn.close()
    assert stored_rows(scp) == 0


def invalid(**values: object) -> Dataset:
    """A workitem with values pydicom warns about as they are set: the test's own part."""
    ds = new_workitem()
    with pynetdicom_warns():
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("values", "fact"),
    [
        ({"PatientName": "A" * 100_000}, "(0010,0010) PN component group of 100000"),
        ({"ScheduledProcedureStepPriority": "URGENT"}, "(0074,1200) 'URGENT' is not one of"),
        ({"ProcedureStepLabel": "x" * 65}, "(0074,1204) LO value of 65 characters"),
        ({"ScheduledProcedureStepStartDateTime": "tomorrow"}, "(0040,4005) DT value"),
        ({"StudyInstanceUID": "1.2.x"}, "(0020,000D) UID with characters"),
    ],
    ids=["long-PN", "CS-term", "long-LO", "DT-form", "UI-form"],
)
async def test_an_invalid_value_is_0106_naming_the_tag(
    scp: UPSSCP, values: dict[str, object], fact: str
) -> None:
    async with await client(scp.port) as scu:
        association = scu.association
        context = association.context_for(UPS_PUSH)
        with pynetdicom_warns():  # pydicom turns a 100,000-char PN into UN, and says so
            raw = encode_dataset(invalid(**values), EXPLICIT_VR_LITTLE_ENDIAN)
        assert context.transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN
        rq = NCreateRQ(association.new_message_id(), UPS_PUSH, str(generate_uid()), dataset=raw)
        rsp = await association.request(rq, context.context_id)
    assert rsp.status == 0x0106
    assert rsp.error_comment is not None and rsp.error_comment.startswith(fact)
    assert len(rsp.error_comment) <= 64
    assert stored_rows(scp) == 0


async def test_n_set_and_change_state_values_are_checked_before_the_store(scp: UPSSCP) -> None:
    iuid = str(generate_uid())
    pn = await asyncio.to_thread(PNClient, scp.port)
    try:
        assert await pn.create(iuid, new_workitem()) == 0
        with pynetdicom_warns():
            claim = state("IN PROGRESS", "not-a-uid")
            assert await pn.action(1, iuid, claim, UPS_PULL) == 0x0106
        tuid = str(generate_uid())
        assert await pn.action(1, iuid, state("IN PROGRESS", tuid), UPS_PULL) == 0
        bad = invalid(ProcedureStepLabel="x" * 65)
        del bad.TransactionUID
        with pynetdicom_warns():
            assert await pn.set(iuid, with_tuid(bad, tuid)) == 0x0106
        status, got = await pn.get(iuid, [0x00741204])
    finally:
        await pn.close()
    assert status == 0 and got is not None and got.ProcedureStepLabel == "PYNETDICOM"


async def test_a_find_with_an_invalid_key_is_refused(scp: UPSSCP) -> None:
    pn = await asyncio.to_thread(PNClient, scp.port)
    try:
        with pynetdicom_warns():
            query = Dataset()
            query.ProcedureStepState = "scheduled"
            answers = await pn.find(query, UPS_PULL)
    finally:
        await pn.close()
    assert [status for status, _ in answers] == [0xA900]
