"""A small UPS SCP on ``ups.net.server.serve`` whose faults a test switches on, one at a time.

Without faults it follows PS3.4 Annex CC where the probe's state, contexts and events
groups look: the state changes come straight from the shared table
(:data:`ups.services.conformance.TRANSITIONS`), the Final State requirements are
checked in outline, N-GET leaves the Transaction UID out, and event reports go to
subscribers over associations it opens itself (UPS Event, SCP role asked for). Each
fault breaks exactly one thing the probe must notice:

* ``all_success``: every request is answered 0x0000 and nothing else happens;
* ``no_events``: no N-EVENT-REPORT is ever sent;
* ``leak_tuid``: N-GET returns the Transaction UID;
* ``double_claim``: a second claim with another Transaction UID wins (0x0000).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

import ups
from ups.dimse.datasets import decode_dataset, encode_dataset
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NEventReportRQ,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
)
from ups.dimse.responses import failure_response
from ups.net.association import Association, HandlerResult, RequestContext
from ups.net.config import AssociationConfig
from ups.net.errors import NetError
from ups.net.requestor import build_request, connect
from ups.net.server import Server, serve
from ups.pdu.items import RoleSelection
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.services.conformance import TRANSITIONS, Row
from ups.services.uids import (
    DEFAULT_TRANSFER_SYNTAXES,
    FAMILIES,
    GLOBAL_SUBSCRIPTION_INSTANCES,
    UPS_EVENT,
    UPS_EVENT_TRIAL,
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    VERIFICATION,
    ProcedureStepState,
)

_FINAL = (ProcedureStepState.COMPLETED, ProcedureStepState.CANCELED)
_TUID = 0x00081195


@dataclass(frozen=True)
class Faults:
    all_success: bool = False
    no_events: bool = False
    leak_tuid: bool = False
    double_claim: bool = False


@dataclass
class _Sub:
    lock: bool = False
    keys: Dataset | None = None  # filtered global
    suspended: bool = False


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _state(ds: Dataset) -> ProcedureStepState:
    return ProcedureStepState(_text(ds, "ProcedureStepState"))


def _report(ds: Dataset) -> Dataset:
    info = Dataset()
    info.ProcedureStepState = _text(ds, "ProcedureStepState")
    info.InputReadinessState = _text(ds, "InputReadinessState") or "READY"
    return info


class FixtureSCP:
    """``async with FixtureSCP(faults, {"PROBE": port}) as scp: ... scp.port``."""

    def __init__(self, faults: Faults, remote_aes: dict[str, int]) -> None:
        self.faults = faults
        self.remote_aes = remote_aes
        self.items: dict[str, Dataset] = {}
        self.subs: dict[tuple[str, str], _Sub] = {}  # (AE, UPS UID or "" for global)
        self._server: Server | None = None
        self._events: asyncio.Queue[tuple[str, int, str, Dataset]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._links: dict[str, Association] = {}

    async def __aenter__(self) -> FixtureSCP:
        support = SyntaxSupport(DEFAULT_TRANSFER_SYNTAXES)
        supported = {uid: support for family in FAMILIES for uid in family.uids}
        supported[VERIFICATION] = support
        policy = AcceptorPolicy(
            ae_titles=None,
            supported=supported,
            max_pdata_length=16384,
            implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
            max_ops_performed=8,
        )
        handlers = {uid: self._handle for uid in supported}
        self._server = await serve("127.0.0.1", 0, policy, handlers=handlers)
        self._sender = asyncio.create_task(self._send_events())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for link in self._links.values():
            link.abort()
        if self._server is not None:
            await self._server.close(1.0)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    # ------------------------------------------------------------------ events

    def _notify(self, iuid: str, event_type: int, info: Dataset, only: str | None = None) -> None:
        if self.faults.no_events:
            return
        targets = [only] if only else [ae for (ae, uid) in self.subs if uid == iuid]
        for ae in targets:
            self._events.put_nowait((ae, event_type, iuid, info))

    async def _send_events(self) -> None:
        while True:
            ae, event_type, iuid, info = await self._events.get()
            with contextlib.suppress(NetError, OSError):
                link = await self._link(ae)
                context = link.context_for(UPS_EVENT)
                request = NEventReportRQ(
                    link.new_message_id(),
                    FAMILIES[0].push,
                    iuid,
                    event_type,
                    encode_dataset(info, context.transfer_syntax),
                )
                await link.request(request, context.context_id)

    async def _link(self, ae: str) -> Association:
        link = self._links.get(ae)
        if link is not None and link.is_established:
            return link
        syntaxes = DEFAULT_TRANSFER_SYNTAXES
        rq = build_request(
            ae,
            "FIXTURE",
            [(UPS_EVENT, syntaxes), (UPS_EVENT_TRIAL, syntaxes)],
            AssociationConfig(connect_timeout=2.0),
            roles=[RoleSelection(UPS_EVENT, False, True)],
        )
        link = await connect("127.0.0.1", self.remote_aes[ae], rq)
        self._links[ae] = link
        return link

    # ------------------------------------------------------------------ dispatch

    def _handle(self, request: Request, ctx: RequestContext) -> HandlerResult:
        syntax = ctx.context.transfer_syntax
        if isinstance(request, CEchoRQ):
            return CEchoRSP(request.message_id, 0)
        if self.faults.all_success:
            if isinstance(request, CFindRQ):
                return CFindRSP(request.message_id, 0)
            return failure_response(request, 0x0000)
        ds = decode_dataset(request.dataset, syntax) if request.dataset else Dataset()
        if isinstance(request, NCreateRQ):
            status = self._create(request.affected_sop_instance_uid or "", ds)
            return NCreateRSP(request.message_id, status, request.affected_sop_class_uid)
        if isinstance(request, NGetRQ):
            return self._get(request, syntax)
        if isinstance(request, NSetRQ):
            status = self._set(request.requested_sop_instance_uid, ds)
            return NSetRSP(request.message_id, status)
        if isinstance(request, NActionRQ):
            status = self._action(request, ds, ctx.association.remote_ae_title)
            return NActionRSP(request.message_id, status, action_type_id=request.action_type_id)
        if isinstance(request, CFindRQ):
            return self._find(request, ds, syntax)
        return failure_response(request, 0x0211)

    # ------------------------------------------------------------------ operations

    def _create(self, iuid: str, ds: Dataset) -> int:
        if iuid in self.items or iuid in GLOBAL_SUBSCRIPTION_INSTANCES:
            return 0x0111
        if _text(ds, "ProcedureStepState") != ProcedureStepState.SCHEDULED:
            return 0xC309
        ds.SOPInstanceUID = iuid
        ds.TransactionUID = None
        self.items[iuid] = ds
        for (ae, uid), sub in list(self.subs.items()):
            if uid == "" and not sub.suspended and self._passes(ds, sub.keys):
                self.subs[(ae, iuid)] = _Sub(sub.lock)
                self._notify(iuid, 1, _report(ds), only=ae)
        return 0x0000

    def _get(self, rq: NGetRQ, syntax: str) -> Response:
        item = self.items.get(rq.requested_sop_instance_uid)
        if item is None:
            return NGetRSP(rq.message_id, 0xC307)
        out = Dataset()
        for elem in item:
            if elem.tag == _TUID and not self.faults.leak_tuid:
                continue
            if not rq.attribute_identifier_list or elem.tag in rq.attribute_identifier_list:
                out.add(elem)
        return NGetRSP(rq.message_id, 0x0000, dataset=encode_dataset(out, syntax))

    def _set(self, iuid: str, ds: Dataset) -> int:
        item = self.items.get(iuid)
        if item is None:
            return 0xC307
        state, tuid = _state(item), _text(ds, "TransactionUID")
        if state in _FINAL:
            return 0xC300
        if state == ProcedureStepState.IN_PROGRESS and tuid != _text(item, "TransactionUID"):
            return 0xC301
        if state == ProcedureStepState.SCHEDULED and tuid:
            return 0xC310
        progress_before = item.get("ProcedureStepProgressInformationSequence")
        for elem in ds:
            if elem.tag != _TUID:
                item[elem.tag] = elem
        if ds.get("ProcedureStepProgressInformationSequence") not in (None, progress_before):
            info = Dataset()
            info.ProcedureStepProgressInformationSequence = (
                ds.ProcedureStepProgressInformationSequence
            )
            self._notify(iuid, 3, info)
        return 0x0000

    def _action(self, rq: NActionRQ, ds: Dataset, calling: str) -> int:
        iuid, action = rq.requested_sop_instance_uid, rq.action_type_id
        if action in (3, 4, 5):
            return self._subscription(action, iuid, ds)
        item = self.items.get(iuid)
        if action == 1:
            return self._change_state(item, ds)
        if action == 2:
            return self._request_cancel(item, ds, calling)
        return 0x0123

    def _change_state(self, item: Dataset | None, ds: Dataset) -> int:
        wanted, tuid = _text(ds, "ProcedureStepState"), _text(ds, "TransactionUID")
        rows = {
            ProcedureStepState.IN_PROGRESS: (Row.IN_PROGRESS, Row.IN_PROGRESS_WRONG_UID),
            ProcedureStepState.SCHEDULED: (Row.SCHEDULED, Row.SCHEDULED),
            ProcedureStepState.COMPLETED: (Row.COMPLETED, Row.COMPLETED_WRONG_UID),
            ProcedureStepState.CANCELED: (Row.CANCELED, Row.CANCELED_WRONG_UID),
        }
        if wanted not in rows:
            return 0x0115
        if item is None:
            return 0xC307
        state = _state(item)
        correct = (
            bool(tuid)
            if state == ProcedureStepState.SCHEDULED
            else tuid == _text(item, "TransactionUID")
        )
        if self.faults.double_claim and state == wanted == ProcedureStepState.IN_PROGRESS and tuid:
            correct, state = True, ProcedureStepState.SCHEDULED  # the second claim "wins"
        cell = TRANSITIONS[(rows[ProcedureStepState(wanted)][0 if correct else 1], state)]
        if cell.new_state is None:
            return int(cell.status)
        if cell.final_check and not self._final_ok(item, cell.new_state):
            return 0xC304
        item.ProcedureStepState = cell.new_state.value
        if cell.new_state == ProcedureStepState.IN_PROGRESS:
            item.TransactionUID = tuid
        self._notify(_text(item, "SOPInstanceUID"), 1, _report(item))
        return 0x0000

    @staticmethod
    def _final_ok(item: Dataset, target: ProcedureStepState) -> bool:
        if target == ProcedureStepState.COMPLETED:
            return bool(item.get("UnifiedProcedureStepPerformedProcedureSequence"))
        items = item.get("ProcedureStepProgressInformationSequence") or []
        return any("ProcedureStepDiscontinuationReasonCodeSequence" in i for i in items)

    def _request_cancel(self, item: Dataset | None, ds: Dataset, calling: str) -> int:
        if item is None:
            return 0xC307
        state, iuid = _state(item), _text(item, "SOPInstanceUID")
        cell = TRANSITIONS[(Row.REQUEST_CANCEL, state)]
        if cell.status:
            return int(cell.status)
        info = Dataset()
        info.RequestingAE = _text(ds, "RequestingAE") or calling
        for keyword in (
            "ReasonForCancellation",
            "ProcedureStepDiscontinuationReasonCodeSequence",
            "ContactURI",
            "ContactDisplayName",
        ):
            if keyword in ds:
                info.add(ds[keyword])
        if state == ProcedureStepState.IN_PROGRESS:
            if not any(uid == iuid for (_, uid) in self.subs):
                return 0xC312
            self._notify(iuid, 2, info)
            return 0x0000
        progress = Dataset()
        progress.ProcedureStepDiscontinuationReasonCodeSequence = DicomSequence([])
        item.ProcedureStepProgressInformationSequence = DicomSequence([progress])
        item.ProcedureStepState = ProcedureStepState.CANCELED.value
        self._notify(iuid, 1, _report(item))
        return 0x0000

    def _subscription(self, action: int, iuid: str, ds: Dataset) -> int:
        ae, lock = _text(ds, "ReceivingAE"), _text(ds, "DeletionLock")
        if not ae:
            return 0x0115
        is_global = iuid in GLOBAL_SUBSCRIPTION_INSTANCES
        if not is_global and iuid not in self.items:
            return 0xC307
        if action == 5:
            if not is_global:
                return 0xC314
            sub = self.subs.get((ae, ""))
            if sub is not None:
                sub.suspended = True
            return 0x0000
        if action == 4:
            for key in [k for k in self.subs if k[0] == ae and (is_global or k[1] == iuid)]:
                del self.subs[key]
            return 0x0000
        if ae not in self.remote_aes:
            return 0xC308
        if lock not in ("TRUE", "FALSE"):
            return 0x0115
        if is_global:
            keys = None
            if iuid == UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE:
                keys = Dataset()
                for elem in ds:
                    if elem.keyword not in ("ReceivingAE", "DeletionLock"):
                        keys.add(elem)
            self.subs[(ae, "")] = _Sub(lock == "TRUE", keys)
            return 0x0000
        self.subs[(ae, iuid)] = _Sub(lock == "TRUE")
        self._notify(iuid, 1, _report(self.items[iuid]), only=ae)
        return 0x0000

    @staticmethod
    def _passes(ds: Dataset, keys: Dataset | None) -> bool:
        return keys is None or all(ds.get(e.tag) == e for e in keys if e.value)

    async def _find(self, rq: CFindRQ, query: Dataset, syntax: str) -> AsyncIterator[Response]:
        for item in list(self.items.values()):
            if all(self._match(item, e.keyword, e.value) for e in query if e.value):
                out = Dataset()
                for elem in query:
                    if elem.tag != _TUID:
                        out.add(item[elem.tag] if elem.tag in item else elem)
                yield CFindRSP(rq.message_id, 0xFF00, dataset=encode_dataset(out, syntax))
        yield CFindRSP(rq.message_id, 0x0000)

    @staticmethod
    def _match(item: Dataset, keyword: str, wanted: object) -> bool:
        have = _text(item, keyword)
        if isinstance(wanted, str):
            return fnmatch.fnmatchcase(have, wanted) if "*" in wanted else have == wanted
        return have in [str(v) for v in wanted]  # type: ignore[attr-defined]
