"""The probe's working association with the SCP, and the workitems it made there.

One association through :mod:`ups.net` (connect, ``Association.request`` and ``find``),
proposing every UPS SOP Class of the family in use plus Verification, so that each
request can go on exactly the context the check chooses. Requests are built here from
:mod:`ups.dimse` messages, not through a UPS client library: the probe must be able to
send what a client should not (another context, another Requested SOP Class, a wrong
Transaction UID). DIMSE-N requests name UPS Push as the Requested SOP Class whatever
context carries them (PS3.4 CC.2.1-CC.2.7).

Every workitem the probe creates is recorded with the Transaction UID it was claimed
with, so that cleanup (:mod:`ups.services.probe.cleanup`) can drive it to a final state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.errors import DatasetError
from ups.dimse.messages import (
    CEchoRQ,
    CFindRQ,
    NActionRQ,
    NCreateRQ,
    NGetRQ,
    NSetRQ,
    Request,
    Response,
)
from ups.dimse.status import Status
from ups.net.association import Association
from ups.net.errors import NetError
from ups.net.requestor import build_request, connect
from ups.pdu.negotiation import AcceptedContext
from ups.services.probe.datasets import quiet_pydicom
from ups.services.probe.model import NotApplicable
from ups.services.probe.options import ProbeOptions
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    FINAL,
    TRIAL,
    VERIFICATION,
    Role,
    UPSFamily,
)

__all__ = [
    "Session",
    "Tracked",
    "Answer",
    "FindAnswer",
    "DEFAULT_ROLES",
    "probe_families",
    "quiet_pydicom",
]

DEFAULT_ROLES: dict[str, Role] = {
    "N-CREATE": Role.PUSH,
    "N-SET": Role.PULL,
    "N-GET": Role.PUSH,
    "N-ACTION 1": Role.PULL,
    "N-ACTION 2": Role.PUSH,
    "N-ACTION 3": Role.WATCH,
    "N-ACTION 4": Role.WATCH,
    "N-ACTION 5": Role.WATCH,
    "C-FIND": Role.PULL,
}
"""The UPS SOP Class whose context carries each request (PS3.4 CC.2, CC.3.1.1)."""


def _decode(raw: bytes, syntax: str) -> Dataset:
    """A response's data set; an undecodable one reads as empty (the check judges that)."""
    with quiet_pydicom():
        try:
            return decode_dataset(raw, syntax)
        except DatasetError:
            return Dataset()


_Builder = Callable[[int, str], Request]
"""Builds a request from (message ID, transfer syntax of the chosen context)."""


def probe_families(family: str) -> tuple[UPSFamily, ...]:
    return {"final": (FINAL,), "trial": (TRIAL,)}.get(family, (FINAL, TRIAL))


@dataclass(slots=True)
class Tracked:
    """A workitem the probe created: its UID, the Transaction UID it holds, its purpose."""

    iuid: str
    purpose: str
    tuid: str | None = None
    locked: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A response's status and decoded data set (None when it had none)."""

    status: int
    dataset: Dataset | None = None
    response: Response | None = None


@dataclass(frozen=True, slots=True)
class FindAnswer:
    status: int
    matches: list[Dataset] = field(default_factory=list)


class Session:
    """The association to the SCP and the family in use (the final one when accepted)."""

    def __init__(self, options: ProbeOptions, run_id: str) -> None:
        self.options = options
        self.run_id = run_id
        self.family: UPSFamily = TRIAL if options.family == "trial" else FINAL
        self.created: dict[str, Tracked] = {}
        self._association: Association | None = None

    # ------------------------------------------------------------------ association

    async def connect(self) -> None:
        """(Re)connect; raises ``NetError`` when the SCP cannot be reached or refuses us."""
        if self._association is not None and self._association.is_established:
            return
        options = self.options
        contexts: list[tuple[str, Sequence[str]]] = []
        for family in probe_families(options.family):
            contexts.extend((uid, DEFAULT_TRANSFER_SYNTAXES) for uid in family.uids)
        contexts.append((VERIFICATION, DEFAULT_TRANSFER_SYNTAXES))
        rq = build_request(options.called_ae, options.calling_ae, contexts, options.config)
        association = await connect(options.host, options.port, rq, options.config)
        negotiated = association.negotiated
        assert negotiated is not None
        if options.family == "auto" and negotiated.context_for(FINAL.push) is None:
            self.family = TRIAL
        self._association = association

    async def close(self) -> None:
        association, self._association = self._association, None
        if association is not None and association.is_established:
            try:
                await association.release()
            except NetError:
                association.abort()

    @property
    def association(self) -> Association:
        assert self._association is not None, "the session is not open"
        return self._association

    def context(self, role: Role) -> AcceptedContext:
        """The accepted context of ``role`` in the family in use; NotApplicable if none."""
        try:
            uid = self.family.uid(role)
        except KeyError:
            raise NotApplicable(f"the {self.family.name} UPS family has no {role} class") from None
        negotiated = self.association.negotiated
        found = None if negotiated is None else negotiated.context_for(uid)
        if found is None:
            raise NotApplicable(f"the SCP accepted no UPS {role.value.capitalize()} context")
        return found

    @property
    def push(self) -> str:
        return self.family.push

    # ------------------------------------------------------------------ requests

    async def send(self, role: Role, build: _Builder) -> Answer:
        """Build a request for ``role``'s context (message ID, transfer syntax), send it."""
        await self.connect()
        association = self.association
        context = self.context(role)
        with quiet_pydicom():
            request = build(association.new_message_id(), context.transfer_syntax)
        response = await association.request(request, context.context_id)
        dataset = None
        if response.dataset:
            dataset = _decode(response.dataset, context.transfer_syntax)
        return Answer(response.status, dataset, response)

    async def echo(self) -> int:
        """C-ECHO on the Verification context: the status (the association is alive)."""
        await self.connect()
        association = self.association
        context = association.context_for(VERIFICATION)
        request = CEchoRQ(association.new_message_id())
        return (await association.request(request, context.context_id)).status

    async def create(
        self, ds: Dataset, purpose: str, iuid: str | None = None, role: Role = Role.PUSH
    ) -> tuple[Answer, str]:
        iuid = iuid or str(generate_uid())
        self.created.setdefault(iuid, Tracked(iuid, purpose))
        push = self.push
        answer = await self.send(
            role, lambda mid, ts: NCreateRQ(mid, push, iuid, encode_dataset(ds, ts))
        )
        return answer, iuid

    async def action(self, iuid: str, action_type: int, ds: Dataset | None, role: Role) -> Answer:
        push = self.push
        return await self.send(
            role,
            lambda mid, ts: NActionRQ(
                mid, push, iuid, action_type, None if ds is None else encode_dataset(ds, ts)
            ),
        )

    async def set(self, iuid: str, ds: Dataset, role: Role = Role.PULL) -> Answer:
        push = self.push
        return await self.send(
            role, lambda mid, ts: NSetRQ(mid, push, iuid, encode_dataset(ds, ts))
        )

    async def get(
        self,
        iuid: str,
        tags: Sequence[int] = (),
        role: Role = Role.PUSH,
        requested_class: str | None = None,
    ) -> Answer:
        wanted = tuple(tags) or None
        sop_class = requested_class or self.push
        return await self.send(role, lambda mid, ts: NGetRQ(mid, sop_class, iuid, wanted))

    async def find(self, query: Dataset, role: Role = Role.PULL) -> FindAnswer:
        """C-FIND: every pending match, then the final status."""
        await self.connect()
        association = self.association
        context = self.context(role)
        syntax = context.transfer_syntax
        with quiet_pydicom():
            identifier = encode_dataset(query, syntax)
        request = CFindRQ(association.new_message_id(), context.abstract_syntax, dataset=identifier)
        matches: list[Dataset] = []
        status = -1
        async for response in association.find(request, context.context_id):
            status = response.status
            if status in (Status.PENDING, Status.PENDING_WARNING) and response.dataset:
                matches.append(_decode(response.dataset, syntax))
        return FindAnswer(status, matches)

    async def state_of(self, iuid: str) -> tuple[int, str | None]:
        """N-GET of Procedure Step State: the status and the state (None if not given)."""
        answer = await self.get(iuid, (0x00741000,))
        state = None
        if answer.dataset is not None and "ProcedureStepState" in answer.dataset:
            state = str(answer.dataset.ProcedureStepState or "").strip() or None
        return answer.status, state

    def label(self, purpose: str) -> str:
        """Procedure Step Label of a probe workitem (LO: 64 characters)."""
        return f"dcmups-probe {self.run_id} {purpose}"[:64]
