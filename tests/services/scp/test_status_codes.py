"""Every failure and warning of PS3.4 CC.1.1 and CC.2, provoked against the SCP.

Each row names the condition, the table it comes from, and the status the SCP
must answer.  Requests the SCU library would never send (a missing Type 1
attribute, an N-CREATE on UPS Pull ...) are built with the DIMSE messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.services.scp.test_service import (
    EventReceiver,
    cancel_reason,
    client,
    final_state_attributes,
    scp_options,
)
from ups.dimse.datasets import encode_dataset
from ups.dimse.messages import CFindRQ, NActionRQ, NCreateRQ, Response
from ups.services.scp import UPSSCP
from ups.services.scu import UPSClient, UPSFailure, UPSResult, with_create_defaults
from ups.services.uids import (
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_PULL,
    UPS_PUSH,
    UPS_WATCH,
)

pytestmark = pytest.mark.timeout(30)


@dataclass
class Bench:
    """One SCP, one SCU, and helpers to put a UPS into a given state."""

    scp: UPSSCP
    scu: UPSClient

    async def make(self, state: str = "SCHEDULED", *, lock: bool = False) -> tuple[str, str]:
        """A UPS in ``state`` (deletion-locked when asked); its UID and Transaction UID."""
        iuid = (await self.scu.create()).iuid
        assert iuid is not None
        tuid = str(generate_uid())
        if lock:
            await self.scu.subscribe("WATCHER", iuid, deletion_lock=True)
        if state == "SCHEDULED":
            return iuid, tuid
        await self.scu.change_state(iuid, "IN PROGRESS", tuid)
        if state == "COMPLETED":
            await self.scu.set(iuid, final_state_attributes(), tuid)
            await self.scu.change_state(iuid, "COMPLETED", tuid)
        elif state == "CANCELED":
            await self.scu.set(iuid, cancel_reason(), tuid)
            await self.scu.change_state(iuid, "CANCELED", tuid)
        return iuid, tuid

    async def raw(self, role_uid: str, request: Callable[[int, str], object]) -> int:
        """Send a hand-built request on the context of ``role_uid``; its status."""
        assoc = self.scu.association
        ctx = assoc.context_for(role_uid)
        message = request(assoc.new_message_id(), ctx.transfer_syntax)
        if isinstance(message, CFindRQ):
            final = None
            async for found in assoc.find(message, ctx.context_id):
                final = found
            assert final is not None
            return final.status
        answer: Response = await assoc.request(message, ctx.context_id)  # type: ignore[arg-type]
        return answer.status

    async def raw_create(self, ds: Dataset, iuid: str | None = None) -> int:
        return await self.raw(
            UPS_PUSH,
            lambda mid, ts: NCreateRQ(
                mid, UPS_PUSH, iuid or str(generate_uid()), encode_dataset(ds, ts)
            ),
        )

    async def raw_action(self, role_uid: str, action: int, iuid: str, ds: Dataset) -> int:
        return await self.raw(
            role_uid,
            lambda mid, ts: NActionRQ(mid, UPS_PUSH, iuid, action, encode_dataset(ds, ts)),
        )


async def status_of(call: Awaitable[UPSResult]) -> int:
    try:
        return (await call).status
    except UPSFailure as exc:
        return exc.status


def create_ds(**values: str | None) -> Dataset:
    """A complete N-CREATE data set with some attributes changed (None: removed)."""
    ds = with_create_defaults(None)
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def watch_ds(**values: str) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


Case = Callable[[Bench], Awaitable[int]]
UNKNOWN = "1.2.3.999"


# --------------------------------------------------------------------- N-CREATE (Table CC.2.5-4)


async def create_duplicate(b: Bench) -> int:
    iuid, _ = await b.make()
    return await status_of(b.scu.create(iuid=iuid))


async def create_not_scheduled(b: Bench) -> int:
    return await b.raw_create(create_ds(ProcedureStepState="IN PROGRESS"))


async def create_missing_type1(b: Bench) -> int:
    return await b.raw_create(create_ds(ScheduledProcedureStepPriority=None))


async def create_empty_type1(b: Bench) -> int:
    return await b.raw_create(create_ds(InputReadinessState=""))


async def create_bad_enum(b: Bench) -> int:
    return await b.raw_create(create_ds(ScheduledProcedureStepPriority="URGENT"))


async def create_with_transaction_uid(b: Bench) -> int:
    return await b.raw_create(create_ds(TransactionUID="1.2.3.4"))


async def create_global_uid(b: Bench) -> int:
    return await b.raw_create(create_ds(), UPS_GLOBAL_SUBSCRIPTION_INSTANCE)


# --------------------------------------------------------------------- N-SET (Table CC.2.6-1)


def label(text: str) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepLabel = text
    return ds


async def set_unknown(b: Bench) -> int:
    return await status_of(b.scu.set(UNKNOWN, label("x")))


async def set_completed(b: Bench) -> int:
    iuid, tuid = await b.make("COMPLETED", lock=True)
    return await status_of(b.scu.set(iuid, label("x"), tuid))


async def set_in_progress_without_tuid(b: Bench) -> int:
    iuid, _ = await b.make("IN PROGRESS")
    return await status_of(b.scu.set(iuid, label("x")))


async def set_in_progress_wrong_tuid(b: Bench) -> int:
    iuid, _ = await b.make("IN PROGRESS")
    return await status_of(b.scu.set(iuid, label("x"), "1.2.3.4"))


async def set_scheduled_with_tuid(b: Bench) -> int:
    iuid, tuid = await b.make()
    return await status_of(b.scu.set(iuid, label("x"), tuid))


async def set_state_scheduled(b: Bench) -> int:
    iuid, _ = await b.make()
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    return await status_of(b.scu.set(iuid, ds))


async def set_sop_instance_uid(b: Bench) -> int:
    iuid, _ = await b.make()
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    return await status_of(b.scu.set(iuid, ds))


async def get_unknown(b: Bench) -> int:
    return await status_of(b.scu.get(UNKNOWN))


# --------------------------------------------------------------------- Change State (CC.2.1-2)


async def claim_unknown(b: Bench) -> int:
    return await status_of(b.scu.change_state(UNKNOWN, "IN PROGRESS", "1.2.3"))


async def claim_without_tuid(b: Bench) -> int:
    iuid, _ = await b.make()
    return await b.raw_action(UPS_PULL, 1, iuid, watch_ds(ProcedureStepState="IN PROGRESS"))


async def claim_twice_same_tuid(b: Bench) -> int:
    iuid, tuid = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "IN PROGRESS", tuid))


async def claim_twice_other_tuid(b: Bench) -> int:
    iuid, _ = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "IN PROGRESS", str(generate_uid())))


async def change_to_scheduled(b: Bench) -> int:
    iuid, tuid = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "SCHEDULED", tuid))


async def complete_scheduled(b: Bench) -> int:
    iuid, tuid = await b.make()
    return await status_of(b.scu.change_state(iuid, "COMPLETED", tuid))


async def complete_without_final_state(b: Bench) -> int:
    iuid, tuid = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "COMPLETED", tuid))


async def cancel_without_final_state(b: Bench) -> int:
    iuid, tuid = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "CANCELED", tuid))


async def complete_wrong_tuid(b: Bench) -> int:
    iuid, _ = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "COMPLETED", "1.2.3.4"))


async def claim_completed(b: Bench) -> int:
    iuid, tuid = await b.make("COMPLETED", lock=True)
    return await status_of(b.scu.change_state(iuid, "IN PROGRESS", tuid))


async def complete_completed(b: Bench) -> int:
    iuid, tuid = await b.make("COMPLETED", lock=True)
    return await status_of(b.scu.change_state(iuid, "COMPLETED", tuid))


async def cancel_canceled(b: Bench) -> int:
    iuid, tuid = await b.make("CANCELED", lock=True)
    return await status_of(b.scu.change_state(iuid, "CANCELED", tuid))


async def cancel_completed(b: Bench) -> int:
    iuid, tuid = await b.make("COMPLETED", lock=True)
    return await status_of(b.scu.change_state(iuid, "CANCELED", tuid))


async def change_to_bad_state(b: Bench) -> int:
    iuid, tuid = await b.make("IN PROGRESS")
    return await status_of(b.scu.change_state(iuid, "DONE", tuid))


# --------------------------------------------------------------------- Request Cancel (CC.2.2-2)


async def reqcancel_unknown(b: Bench) -> int:
    return await status_of(b.scu.request_cancel(UNKNOWN))


async def reqcancel_completed(b: Bench) -> int:
    iuid, _ = await b.make("COMPLETED", lock=True)
    return await status_of(b.scu.request_cancel(iuid))


async def reqcancel_canceled(b: Bench) -> int:
    iuid, _ = await b.make("CANCELED", lock=True)
    return await status_of(b.scu.request_cancel(iuid))


async def reqcancel_unreachable_performer(b: Bench) -> int:
    iuid, _ = await b.make("IN PROGRESS")
    return await status_of(b.scu.request_cancel(iuid))


# --------------------------------------------------------------------- Subscriptions (CC.2.3-3)


async def subscribe_unknown_ups(b: Bench) -> int:
    return await status_of(b.scu.subscribe("WATCHER", UNKNOWN))


async def subscribe_unknown_ae(b: Bench) -> int:
    return await status_of(b.scu.subscribe("STRANGER"))


async def unsubscribe_unknown_ups(b: Bench) -> int:
    return await status_of(b.scu.unsubscribe("WATCHER", UNKNOWN))


async def suspend_specific_ups(b: Bench) -> int:
    iuid, _ = await b.make()
    return await b.raw_action(UPS_WATCH, 5, iuid, watch_ds(ReceivingAE="WATCHER"))


async def subscribe_without_receiving_ae(b: Bench) -> int:
    ds = watch_ds(DeletionLock="FALSE")
    return await b.raw_action(UPS_WATCH, 3, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, ds)


async def subscribe_bad_deletion_lock(b: Bench) -> int:
    ds = watch_ds(ReceivingAE="WATCHER", DeletionLock="MAYBE")
    return await b.raw_action(UPS_WATCH, 3, UPS_GLOBAL_SUBSCRIPTION_INSTANCE, ds)


# --------------------------------------------------------------------- general (PS3.7 Annex C)


async def action_type_unknown(b: Bench) -> int:
    iuid, _ = await b.make()
    return await b.raw_action(UPS_WATCH, 6, iuid, Dataset())


async def change_state_on_watch(b: Bench) -> int:
    iuid, tuid = await b.make()
    ds = watch_ds(ProcedureStepState="IN PROGRESS", TransactionUID=tuid)
    return await b.raw_action(UPS_WATCH, 1, iuid, ds)


async def create_on_pull(b: Bench) -> int:
    return await b.raw(
        UPS_PULL,
        lambda mid, ts: NCreateRQ(
            mid, UPS_PUSH, str(generate_uid()), encode_dataset(create_ds(), ts)
        ),
    )


async def find_bad_range(b: Bench) -> int:
    await b.make()  # a candidate, so the key is looked at
    query = Dataset()
    query.add_new(0x00404005, "DT", "yesterday-today")
    return await b.raw(
        UPS_PULL, lambda mid, ts: CFindRQ(mid, UPS_PULL, dataset=encode_dataset(query, ts))
    )


CASES: list[tuple[Case, int]] = [
    (create_duplicate, 0x0111),
    (create_not_scheduled, 0xC309),
    (create_missing_type1, 0x0120),
    (create_empty_type1, 0x0121),
    (create_bad_enum, 0x0106),
    (create_with_transaction_uid, 0xB300),
    (create_global_uid, 0x0111),
    (set_unknown, 0xC307),
    (set_completed, 0xC300),
    (set_in_progress_without_tuid, 0xC301),
    (set_in_progress_wrong_tuid, 0xC301),
    (set_scheduled_with_tuid, 0xC310),
    (set_state_scheduled, 0xC303),
    (set_sop_instance_uid, 0x0106),
    (get_unknown, 0xC307),
    (claim_unknown, 0xC307),
    (claim_without_tuid, 0xC301),
    (claim_twice_same_tuid, 0xC302),
    (claim_twice_other_tuid, 0xC301),
    (change_to_scheduled, 0xC303),
    (complete_scheduled, 0xC310),
    (complete_without_final_state, 0xC304),
    (cancel_without_final_state, 0xC304),
    (complete_wrong_tuid, 0xC301),
    (claim_completed, 0xC300),
    (complete_completed, 0xB306),
    (cancel_canceled, 0xB304),
    (cancel_completed, 0xC300),
    (change_to_bad_state, 0x0115),
    (reqcancel_unknown, 0xC307),
    (reqcancel_completed, 0xC311),
    (reqcancel_canceled, 0xB304),
    (reqcancel_unreachable_performer, 0xC312),
    (subscribe_unknown_ups, 0xC307),
    (subscribe_unknown_ae, 0xC308),
    (unsubscribe_unknown_ups, 0xC307),
    (suspend_specific_ups, 0xC314),
    (subscribe_without_receiving_ae, 0x0115),
    (subscribe_bad_deletion_lock, 0x0115),
    (action_type_unknown, 0x0123),
    (change_state_on_watch, 0x0123),
    (create_on_pull, 0x0211),
    (find_bad_range, 0xA900),
]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    receiver = await EventReceiver().start()
    try:
        async with UPSSCP(scp_options(tmp_path / "ups.db", {"WATCHER": receiver.port})) as scp:
            async with await client(scp.port) as scu:
                yield Bench(scp, scu)
    finally:
        await receiver.close()


@pytest.mark.filterwarnings("ignore:Invalid value for VR DT")
@pytest.mark.parametrize(("case", "expected"), CASES, ids=[c.__name__ for c, _ in CASES])
async def test_status(bench: Bench, case: Case, expected: int) -> None:
    assert f"{await case(bench):04X}" == f"{expected:04X}"
