"""The probe's own event receiver: every N-EVENT-REPORT the SCP sends, with its arrival time.

An acceptor on :func:`ups.net.server.serve` for the UPS Event SOP Class of both families
(and Verification). dcm4chee-arc proposes SCP/SCU Role Selection with itself as the
Event SCP and fails unless that role comes back, so the requestor is granted the SCP
role when it asks; a sender that proposes no roles gets the defaults (PS3.7 D.3.3.4).
Each report is answered Success at once and kept, in order of arrival, so a check can
wait for the events a step must cause, or make sure an event did not come.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import ups
from ups.dimse.codec import RESPONSE_BIT
from ups.dimse.datasets import TRANSFER_SYNTAXES, LazyDataset
from ups.dimse.messages import MESSAGE_TYPES, NEventReportRQ, NEventReportRSP, Request, Response
from ups.dimse.status import Status
from ups.net.association import RequestContext
from ups.net.server import Server, serve
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.services.events import EVENT_SOP_CLASSES, UPSEvent
from ups.services.uids import VERIFICATION

__all__ = ["Arrival", "Inbox", "inbox_policy"]

_UNRECOGNIZED_OPERATION = Status.UNRECOGNIZED_OPERATION
_Answer = Callable[[int, int], Response]


@dataclass(frozen=True, slots=True)
class Arrival:
    """One event as received; ``at`` is ``time.monotonic()`` on arrival."""

    event: UPSEvent
    at: float

    @property
    def iuid(self) -> str:
        return self.event.iuid


def inbox_policy(ae_title: str) -> AcceptorPolicy:
    """UPS Event (final and trial) with the SCP role grantable, and Verification."""
    event = SyntaxSupport(TRANSFER_SYNTAXES, requestor_scu=True, requestor_scp=True)
    supported = {uid: event for uid in EVENT_SOP_CLASSES}
    supported[VERIFICATION] = SyntaxSupport(TRANSFER_SYNTAXES)
    return AcceptorPolicy(
        ae_titles=frozenset({ae_title}),
        supported=supported,
        max_pdata_length=64 * 1024,
        implementation_class_uid=ups.IMPLEMENTATION_CLASS_UID,
        implementation_version_name=ups.IMPLEMENTATION_VERSION_NAME,
        max_ops_performed=16,
    )


class Inbox:
    """Receives and keeps event reports; ``wait_for`` lets a check await one."""

    def __init__(self, ae_title: str) -> None:
        self.ae_title = ae_title
        self.arrivals: list[Arrival] = []
        self._server: Server | None = None
        self._changed = asyncio.Event()

    async def start(self, host: str, port: int) -> Inbox:
        handlers = {uid: self._on_request for uid in EVENT_SOP_CLASSES}
        self._server = await serve(host, port, inbox_policy(self.ae_title), handlers=handlers)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close(1.0)
            self._server = None

    def _on_request(self, request: Request, ctx: RequestContext) -> Response:
        if not isinstance(request, NEventReportRQ):
            # Its response class is its Command Field with the response bit (PS3.7 E.1).
            answer = cast(_Answer, MESSAGE_TYPES[request.COMMAND_FIELD | RESPONSE_BIT])
            return answer(getattr(request, "message_id", 0), _UNRECOGNIZED_OPERATION)
        association = ctx.association
        raw = None
        if request.dataset:
            raw = LazyDataset(request.dataset, ctx.context.transfer_syntax)
        event = UPSEvent(
            event_type_id=request.event_type_id,
            iuid=request.affected_sop_instance_uid,
            sop_class_uid=request.affected_sop_class_uid,
            calling_aet=association.remote_ae_title,
            called_aet=association.local_ae_title,
            received=time.time(),
            raw_dataset=raw,
            message_id=request.message_id,
            context_sop_class_uid=ctx.context.abstract_syntax,
        )
        self.arrivals.append(Arrival(event, time.monotonic()))
        self._changed.set()
        return NEventReportRSP(
            request.message_id,
            Status.SUCCESS,
            request.affected_sop_class_uid,
            request.affected_sop_instance_uid,
            request.event_type_id,
        )

    def mark(self) -> int:
        """A position in the arrivals: events after it are "new"."""
        return len(self.arrivals)

    def since(self, mark: int, iuid: str | None = None) -> list[Arrival]:
        return [a for a in self.arrivals[mark:] if iuid is None or a.iuid == iuid]

    async def wait_for(
        self, predicate: Callable[[list[Arrival]], bool], mark: int, timeout: float
    ) -> bool:
        """Wait until ``predicate(arrivals since mark)`` holds; False after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self.arrivals[mark:]):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                return predicate(self.arrivals[mark:])
        return True
