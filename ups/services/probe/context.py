"""What every check is handed: the options, the working session, the event inbox.

It also puts workitems into the state a check starts from (``make``), so each check
reads as "given a UPS in this state, this request must get that answer". A step that
fails raises :class:`~ups.services.probe.model.SetupFailed`: the check is then not
applicable, and whatever check asks that step directly reports the fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ups.dimse.status import StatusCategory, category_of
from ups.services.probe.datasets import (
    cancel_attributes,
    create_dataset,
    final_state_attributes,
    quiet_pydicom,
    state_change,
    subscription,
)
from ups.services.probe.inbox import Inbox
from ups.services.probe.model import SetupFailed, hex4
from ups.services.probe.options import ProbeOptions
from ups.services.probe.session import Session, Tracked
from ups.services.uids import ActionType, ProcedureStepState, Role

__all__ = ["ProbeContext", "succeeded"]


def succeeded(status: int) -> bool:
    """Success or a warning: the request was carried out (PS3.7 C.1)."""
    return category_of(status) in (StatusCategory.SUCCESS, StatusCategory.WARNING)


@dataclass
class ProbeContext:
    options: ProbeOptions
    session: Session
    inbox: Inbox
    latencies: list[float] = field(default_factory=list)
    """Seconds from a triggering response to each expected event's arrival."""
    lock_refused: int | None = None
    """The status of a refused Deletion Lock subscription, once one was refused."""
    shared: dict[str, object] = field(default_factory=dict)
    """What a group makes once and its checks share (the find group's workitems)."""

    @property
    def receiving_ae(self) -> str:
        return self.options.receiving_ae

    def label(self, purpose: str) -> str:
        return self.session.label(purpose)

    # ------------------------------------------------------------------ set-up steps

    async def create(self, purpose: str, **values: object) -> Tracked:
        answer, iuid = await self.session.create(
            create_dataset(self.label(purpose), **values), purpose
        )
        if not succeeded(answer.status):
            raise SetupFailed(f"N-CREATE answered {hex4(answer.status)}")
        return self.session.created[iuid]

    async def subscribe(self, item: Tracked, *, lock: bool) -> int:
        """Subscribe our inbox to ``item``; the status (C308: the SCP does not know us)."""
        ds = subscription(self.receiving_ae, lock)
        answer = await self.session.action(item.iuid, ActionType.SUBSCRIBE, ds, Role.WATCH)
        if succeeded(answer.status):
            item.locked = item.locked or lock
        elif lock and self.lock_refused is None:
            self.lock_refused = answer.status
        return answer.status

    async def claim(self, item: Tracked) -> None:
        tuid = str(generate_uid())
        ds = state_change(ProcedureStepState.IN_PROGRESS, tuid)
        answer = await self.session.action(item.iuid, ActionType.CHANGE_STATE, ds, Role.PULL)
        if not succeeded(answer.status):
            raise SetupFailed(f"claiming it answered {hex4(answer.status)}")
        item.tuid = tuid

    async def set(self, item: Tracked, ds: Dataset) -> int:
        if item.tuid is not None:
            with quiet_pydicom():
                ds.TransactionUID = item.tuid
        return (await self.session.set(item.iuid, ds)).status

    async def finish(self, item: Tracked, target: ProcedureStepState) -> None:
        """Set the Final State attributes (Table CC.2.5-3) and change to ``target``."""
        attrs = (
            final_state_attributes()
            if target == ProcedureStepState.COMPLETED
            else cancel_attributes()
        )
        status = await self.set(item, attrs)
        if not succeeded(status):
            raise SetupFailed(f"N-SET of the Final State attributes answered {hex4(status)}")
        ds = state_change(target, item.tuid)
        answer = await self.session.action(item.iuid, ActionType.CHANGE_STATE, ds, Role.PULL)
        if not succeeded(answer.status):
            raise SetupFailed(f"changing it to {target} answered {hex4(answer.status)}")

    async def make(
        self, start: ProcedureStepState | None, purpose: str, *, lock: bool = False
    ) -> Tracked:
        """A workitem in ``start`` (for None: an unknown UID), held by a lock when asked.

        The lock (a Deletion Lock subscription, CC.2.3.2) is taken while the UPS is
        SCHEDULED; an SCP that refuses it still gets the check, without the lock.
        """
        if start is None:
            return Tracked(str(generate_uid()), purpose)
        item = await self.create(purpose)
        if lock:
            await self.subscribe(item, lock=True)
        if start == ProcedureStepState.SCHEDULED:
            return item
        await self.claim(item)
        if start in (ProcedureStepState.COMPLETED, ProcedureStepState.CANCELED):
            await self.finish(item, start)
        return item
