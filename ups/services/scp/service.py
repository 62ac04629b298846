"""The reference UPS SCP: UPS Push, Pull, Watch, Event and Query over an embedded store.

This module owns the request handlers of the SCP side of PS3.4 Annex CC and the
delivery of the N-EVENT-REPORTs they cause.  The rules are in
:mod:`ups.services.scp.upsstate` and :mod:`ups.services.scp.matching`; the durable state is
a :class:`ups.services.scp.store.Store` (SQLite by default, PostgreSQL to share one
worklist between processes).

Which operation travels on which presentation context (PS3.4 CC.2; as deployed
SCUs use them, see ``ups-peers.md``):

========  ==========================================================
Push      N-CREATE, N-SET (lenient), N-GET, N-ACTION 2
Pull      N-SET, N-GET, N-ACTION 1, C-FIND
Watch     N-GET, N-ACTION 2-5, C-FIND
Query     N-GET, C-FIND
Event     accepted, carries no requests to us
========  ==========================================================

Another DIMSE on a context answers Unrecognized operation; another action type
No such Action (PS3.7 Annex C).  Final and Trial UIDs are served alike.

Acknowledged means durable: every handler runs its store call on the store's one
worker thread and builds the response only after that call has committed, so a
kill -9 loses nothing that was answered with success.  N-GET never returns the
Transaction UID (CC.2.7.3).  COMPLETED and CANCELED workitems are kept for
``SCPOptions.retain`` seconds and while a Deletion Lock holds them, then purged
(:mod:`ups.services.scp.retention`), so Table CC.1.1-2's answers for a finished UPS
(B306, C300, N-GET of the final state) hold for a performer's retry.

Event reports (CC.2.4.3) are queued by the store in the same transaction as the
change that causes them and delivered by :mod:`ups.services.scp.delivery`.  On start
the SCP tells every subscriber it RESTARTED (SCP Status Change, WARM START), and
on a clean stop that it is GOING DOWN, when ``announce_status`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

import ups
from ups.dimse.datasets import encode_dataset
from ups.dimse.errors import DimseError
from ups.dimse.messages import (
    CFindRQ,
    CFindRSP,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
)
from ups.dimse.responses import failure_response
from ups.dimse.status import Status
from ups.errors import DicomError
from ups.net.association import HandlerResult, RequestContext
from ups.net.server import Server, serve
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.services.errors import ServiceError
from ups.services.scp.attributes import Update, check_create, check_set
from ups.services.scp.config import SCPOptions
from ups.services.scp.delivery import EventDispatcher
from ups.services.scp.finding import Find
from ups.services.scp.matching import TRANSACTION_UID
from ups.services.scp.reports import EventReport, scp_status_change
from ups.services.scp.retention import Retention
from ups.services.scp.store import GLOBAL_UIDS, Store
from ups.services.scp.stores import open_store
from ups.services.scp.upsstate import (
    CancelOutcome,
    Transition,
    check_change_state,
    check_request_cancel,
)
from ups.services.scp.validation import (
    AFFECTED,
    REQUESTED,
    check_instance_uid,
    decode_checked,
)
from ups.services.uids import (
    FAMILIES,
    UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE,
    UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
    VERIFICATION,
    ActionType,
    EventType,
    ProcedureStepState,
    Role,
    UPSFamily,
    family_of,
    role_of,
)

__all__ = ["UPSSCP", "EventDispatcher"]

log = logging.getLogger("ups.scp")

_T = TypeVar("_T")
_FINAL_STATES = (ProcedureStepState.COMPLETED, ProcedureStepState.CANCELED)
_SUBSCRIPTION_KEYS = frozenset({"ReceivingAE", "DeletionLock"})

# PS3.4 CC.2 as deployed: which DIMSE each UPS SOP Class carries, which actions.
_OPERATIONS: Mapping[Role, tuple[type, ...]] = {
    Role.PUSH: (NCreateRQ, NSetRQ, NGetRQ, NActionRQ),
    Role.PULL: (NSetRQ, NGetRQ, NActionRQ, CFindRQ),
    Role.WATCH: (NGetRQ, NActionRQ, CFindRQ),
    Role.QUERY: (NGetRQ, CFindRQ),
    Role.EVENT: (),
}
_ACTIONS: Mapping[Role, frozenset[int]] = {
    Role.PUSH: frozenset({ActionType.REQUEST_CANCEL}),
    Role.PULL: frozenset({ActionType.CHANGE_STATE}),
    Role.WATCH: frozenset(
        {
            ActionType.REQUEST_CANCEL,
            ActionType.SUBSCRIBE,
            ActionType.UNSUBSCRIBE,
            ActionType.SUSPEND_GLOBAL,
        }
    ),
}


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


def _now() -> datetime:
    return datetime.now().astimezone()


# ============================================================================ the SCP


class UPSSCP:
    """The UPS SCP: ``async with UPSSCP(options) as scp:`` serves until the block ends."""

    def __init__(self, options: SCPOptions, store: Store | None = None) -> None:
        self.options = options
        self._store_given = store
        self._store: Store | None = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ups-store")
        self._server: Server | None = None
        self._dispatcher: EventDispatcher | None = None
        self._retention: Retention | None = None
        self.finds_cancelled = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def store(self) -> Store:
        assert self._store is not None, "the SCP is not started"
        return self._store

    @property
    def events(self) -> EventDispatcher:
        assert self._dispatcher is not None, "the SCP is not started"
        return self._dispatcher

    @property
    def retention(self) -> Retention:
        assert self._retention is not None, "the SCP is not started"
        return self._retention

    @property
    def port(self) -> int:
        assert self._server is not None, "the SCP is not started"
        return self._server.port

    @property
    def server(self) -> Server:
        assert self._server is not None, "the SCP is not started"
        return self._server

    def _db(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Awaitable[_T]:
        """Run a store call on the store thread (the only thread that touches it)."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def policy(self) -> AcceptorPolicy:
        """What the SCP accepts: every UPS SOP Class of both families, and Verification."""
        opts = self.options
        support = SyntaxSupport(tuple(opts.transfer_syntaxes))
        supported = {uid: support for family in FAMILIES for uid in family.uids}
        supported[VERIFICATION] = support
        return AcceptorPolicy(
            ae_titles=None if opts.any_called_ae else frozenset({opts.ae_title}),
            supported=supported,
            max_pdata_length=opts.config.max_pdata_receive,
            implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
            implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
            calling_ae_titles=opts.calling_ae_titles,
            max_ops_performed=opts.max_ops_performed,
            verify_identity=opts.verify_identity,
        )

    async def start(self) -> None:
        """Open the store, announce the restart, listen, start delivering events."""
        try:
            if self._store is None:
                self._store = await self._db(open_store, self.options.db)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        store = self._store
        self._retention = Retention(store, self._db, self.options.retain)
        await self._retention.sweep()
        if self.options.announce_status:
            await self._announce("RESTARTED")
        handlers = {uid: self._handle for family in FAMILIES for uid in family.uids}
        self._dispatcher = EventDispatcher(store, self._db, self.options)
        self._server = await serve(
            self.options.host,
            self.options.port,
            self.policy(),
            self.options.config,
            handlers=handlers,
        )
        self._dispatcher.start()
        self._dispatcher.kick()

    async def _announce(self, status: str) -> int:
        store = self.store
        aes: list[str] = await self._db(store.all_subscriber_aes)
        events = [
            EventReport(
                EventType.SCP_STATUS_CHANGE,
                UPS_GLOBAL_SUBSCRIPTION_INSTANCE,
                scp_status_change(status),
                ae,
            )
            for ae in aes
        ]
        if not events:
            return 0
        return await self._db(store.enqueue_events, events, now=time.time())

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, finish or abort open associations, say GOING DOWN, close."""
        if self._server is not None:
            await self._server.close(grace)
        if self._dispatcher is not None:
            if self.options.announce_status and self._store is not None:
                try:
                    if await self._announce("GOING DOWN"):
                        await self._dispatcher.drain(self.options.shutdown_flush)
                except DicomError:
                    log.exception("announcing shutdown failed")
            await self._dispatcher.stop()
        if self._retention is not None:
            await self._retention.close()
        if self._store is not None and self._store_given is None:
            await self._db(self._store.close)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> UPSSCP:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ dispatch

    def _handle(self, request: Request, ctx: RequestContext) -> HandlerResult:
        abstract = ctx.context.abstract_syntax
        role = role_of(abstract)
        family = family_of(abstract)
        if role is None or family is None or not isinstance(request, _OPERATIONS[role]):
            return failure_response(
                request,
                Status.UNRECOGNIZED_OPERATION,
                f"{type(request).__name__[:-2]} is not part of UPS {role}",
            )
        if isinstance(request, CFindRQ):
            return self._find(request, ctx)
        return self._serve(request, ctx, role, family)

    async def _serve(
        self, request: Request, ctx: RequestContext, role: Role, family: UPSFamily
    ) -> Response:
        try:
            if isinstance(request, NCreateRQ):
                return await self._create(request, ctx, family)
            check_instance_uid(getattr(request, "requested_sop_instance_uid", ""), REQUESTED)
            requested = getattr(request, "requested_sop_class_uid", "")
            if requested not in family:
                raise ServiceError(
                    Status.NO_SUCH_SOP_CLASS, f"{requested} is not a UPS class of this context"
                )
            if isinstance(request, NSetRQ):
                return await self._set(request, ctx)
            if isinstance(request, NGetRQ):
                return await self._get(request, ctx)
            assert isinstance(request, NActionRQ)
            return await self._action(request, ctx, role)
        except ServiceError as exc:
            return failure_response(request, exc.status, exc.comment)
        except DimseError as exc:
            return failure_response(request, exc.status, str(exc))

    async def _decode(
        self,
        raw: bytes | None,
        ctx: RequestContext,
        status: Status = Status.INVALID_ATTRIBUTE_VALUE,
        *,
        query: bool = False,
        terms: bool = True,
    ) -> Dataset:
        """Decode and check off the event loop: a data set within every scanner limit can
        still take pydicom most of a second, and other associations must not wait for it.
        An invalid value is refused with ``status`` (:mod:`ups.services.scp.validation`)."""
        if not raw:
            return Dataset()
        limits = self.options.scan_limits
        syntax = ctx.context.transfer_syntax
        return await self._db(decode_checked, raw, syntax, limits, status, query=query, terms=terms)

    # ------------------------------------------------------------------ N-CREATE / N-SET / N-GET

    async def _create(self, rq: NCreateRQ, ctx: RequestContext, family: UPSFamily) -> Response:
        if rq.affected_sop_class_uid not in family:
            raise ServiceError(
                Status.NO_SUCH_SOP_CLASS, f"{rq.affected_sop_class_uid} is not UPS Push"
            )
        if rq.affected_sop_instance_uid:
            check_instance_uid(rq.affected_sop_instance_uid, AFFECTED)
        ds = await self._decode(rq.dataset, ctx)
        iuid = rq.affected_sop_instance_uid or _text(ds, "SOPInstanceUID") or str(generate_uid())
        if iuid in GLOBAL_UIDS:
            raise ServiceError(Status.DUPLICATE_SOP_INSTANCE, "a well-known UID cannot be created")
        creation = check_create(
            ds, iuid=iuid, now=_now(), default_worklist_label=self.options.worklist_label
        )
        creation.dataset.SOPClassUID = family.push
        await self._db(
            self.store.create_workitem, creation.dataset, events=creation.events, now=time.time()
        )
        self.events.kick()
        return NCreateRSP(rq.message_id, creation.status, family.push, iuid)

    async def _set(self, rq: NSetRQ, ctx: RequestContext) -> Response:
        ds = await self._decode(rq.dataset, ctx)
        iuid = rq.requested_sop_instance_uid
        tuid = _text(ds, "TransactionUID")
        now = _now()
        outcome: Update = await self._db(
            self.store.modify_workitem,
            iuid,
            lambda current: check_set(current, ds, tuid, now=now),
            now=time.time(),
        )
        if outcome.events:
            self.events.kick()
        return NSetRSP(rq.message_id, outcome.status, rq.requested_sop_class_uid, iuid)

    async def _get(self, rq: NGetRQ, ctx: RequestContext) -> Response:
        iuid = rq.requested_sop_instance_uid
        workitem = await self._db(self.store.get_workitem, iuid)
        if workitem is None:
            raise ServiceError(Status.UPS_NO_SUCH_INSTANCE, "no such UPS")
        out = Dataset()
        wanted = rq.attribute_identifier_list
        for elem in workitem:
            tag = int(elem.tag)
            if tag == TRANSACTION_UID:  # CC.2.7.3: never returned, it is the lock
                continue
            if not wanted or tag in wanted:
                out.add(elem)
        return NGetRSP(
            rq.message_id,
            Status.SUCCESS,
            rq.requested_sop_class_uid,
            iuid,
            dataset=encode_dataset(out, ctx.context.transfer_syntax),
        )

    # ------------------------------------------------------------------ N-ACTION

    async def _action(self, rq: NActionRQ, ctx: RequestContext, role: Role) -> Response:
        action = rq.action_type_id
        if action not in _ACTIONS.get(role, frozenset()):
            raise ServiceError(
                Status.NO_SUCH_ACTION, f"action type {action} is not part of UPS {role}"
            )
        subscribing = action == ActionType.SUBSCRIBE  # a filtered one's keys match as in C-FIND
        ds = await self._decode(rq.dataset, ctx, query=subscribing, terms=False)
        iuid = rq.requested_sop_instance_uid
        status = 0
        if action == ActionType.CHANGE_STATE:
            status = await self._change_state(iuid, ds)
        elif action == ActionType.REQUEST_CANCEL:
            calling = ctx.association.remote_ae_title
            status = await self._request_cancel(iuid, ds, calling)
        elif action == ActionType.SUBSCRIBE:
            await self._subscribe(iuid, ds)
        elif action == ActionType.UNSUBSCRIBE:
            await self._db(self.store.unsubscribe, self._receiving_ae(ds, known=False), iuid)
            await self.retention.sweep()  # a Deletion Lock may have gone
        else:
            if iuid not in GLOBAL_UIDS:
                raise ServiceError(
                    Status.UPS_ACTION_NOT_APPROPRIATE,
                    "suspend applies to the global subscription only",
                )
            await self._db(self.store.suspend_global, self._receiving_ae(ds, known=False))
        return NActionRSP(rq.message_id, status, rq.requested_sop_class_uid, iuid, action)

    async def _change_state(self, iuid: str, ds: Dataset) -> int:
        state = _text(ds, "ProcedureStepState")
        tuid = _text(ds, "TransactionUID")
        now = _now()
        outcome: Transition = await self._db(
            self.store.modify_workitem,
            iuid,
            lambda current: check_change_state(current, state, tuid, now=now),
            now=time.time(),
        )
        await self._after_change(outcome.new_state, bool(outcome.events))
        return outcome.status

    async def _request_cancel(self, iuid: str, ds: Dataset, calling: str) -> int:
        requesting = _text(ds, "RequestingAE") or calling
        now = _now()

        def decide(current: Dataset | None) -> CancelOutcome:
            return check_request_cancel(
                current,
                requesting_ae=requesting,
                request=ds,
                now=now,
                performer_reachable=self._reachable(iuid),
            )

        outcome: CancelOutcome = await self._db(
            self.store.modify_workitem, iuid, decide, now=time.time()
        )
        await self._after_change(outcome.new_state, bool(outcome.events))
        return outcome.status

    def _reachable(self, iuid: str) -> bool:
        """Store thread only: can a Cancel Requested event reach anyone (CC.2.2.3, C312)?"""
        known = self.options.remote_aes
        return any(s.ae_title in known for s in self.store.subscribers_for(iuid))

    async def _after_change(self, new_state: ProcedureStepState, queued: bool) -> None:
        if new_state in _FINAL_STATES:
            await self.retention.sweep()
        if queued:
            self.events.kick()

    def _receiving_ae(self, ds: Dataset, *, known: bool) -> str:
        if "ReceivingAE" not in ds or not _text(ds, "ReceivingAE"):
            raise ServiceError(Status.INVALID_ARGUMENT_VALUE, "Receiving AE (0074,1234) missing")
        ae_title = _text(ds, "ReceivingAE")
        if known and ae_title not in self.options.remote_aes:
            raise ServiceError(
                Status.UPS_UNKNOWN_RECEIVING_AE, f"Receiving AE {ae_title} is unknown to this SCP"
            )
        return ae_title

    async def _subscribe(self, iuid: str, ds: Dataset) -> None:
        ae_title = self._receiving_ae(ds, known=True)
        lock_text = _text(ds, "DeletionLock").upper()
        if lock_text not in ("TRUE", "FALSE"):
            raise ServiceError(
                Status.INVALID_ARGUMENT_VALUE, "Deletion Lock (0074,1230) must be TRUE or FALSE"
            )
        keys: Dataset | None = None
        if iuid == UPS_FILTERED_GLOBAL_SUBSCRIPTION_INSTANCE:
            keys = Dataset()
            for elem in ds:
                if elem.keyword not in _SUBSCRIPTION_KEYS:
                    keys.add(elem)
        queued = await self._db(
            self.store.subscribe,
            ae_title,
            iuid,
            deletion_lock=lock_text == "TRUE",
            now=time.time(),
            match_keys=keys,
        )
        if queued:
            self.events.kick()
        if lock_text == "FALSE":
            await self.retention.sweep()  # it may have replaced a Deletion Lock

    # ------------------------------------------------------------------ C-FIND

    async def _find(self, rq: CFindRQ, ctx: RequestContext) -> AsyncGenerator[Response, None]:
        """Stream the matches: a page is read (on the store thread) only when the last one
        is sent, and serve_stream sends each response only when the transport has room,
        so a reader that stalls holds one page, never the result set (issue 17)."""
        sop_class = rq.affected_sop_class_uid
        try:
            query = await self._decode(
                rq.dataset, ctx, Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, query=True
            )
            find = await self._db(Find, self.store, query, ctx.context.transfer_syntax)
        except (ServiceError, DimseError) as exc:
            comment = exc.comment if isinstance(exc, ServiceError) else str(exc)
            yield failure_response(rq, exc.status, comment)
            return
        try:
            while not ctx.cancelled:
                page = await self._db(find.next_page)
                if page is None:
                    break
                for identifier in page:
                    if ctx.cancelled:
                        break
                    yield CFindRSP(rq.message_id, Status.PENDING, sop_class, dataset=identifier)
        except ServiceError as exc:  # a key only matching could read (within a sequence)
            yield failure_response(rq, exc.status, exc.comment)
            return
        finally:  # also when the core stops the stream (cancel, association gone)
            with contextlib.suppress(RuntimeError):  # the store thread is already gone
                await self._db(find.close)
        if ctx.cancelled:
            self.finds_cancelled += 1
            yield CFindRSP(rq.message_id, Status.CANCEL, sop_class)
            return
        yield CFindRSP(rq.message_id, Status.SUCCESS, sop_class)
