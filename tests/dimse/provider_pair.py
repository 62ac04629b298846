"""Two DIMSE provider cores joined in memory, on a virtual clock (aioquic's ``transfer``).

``Pair`` holds a requestor and an acceptor ``DimseProvider`` and plays the network and
the adapter between them: ``transfer`` moves one side's bytes (and its close) to the
other, and ``settle`` drains each core's events (carrying out its transport effects and
letting a performer answer the requests it receives) and transfers both ways until
nothing moves; ``advance`` moves the
clock, firing each core's deadlines in order. No socket, no sleep.

``Lone`` is one core and a byte pipe from a scripted peer, for raw and hostile bytes
(``wire`` encodes the peer's messages, ``answers`` decodes what the core sent back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ups.dimse.codec import MESSAGE_ID_BEING_RESPONDED_TO, STATUS, decode_command_set
from ups.dimse.errors import ProviderError
from ups.dimse.fragment import encode_pdata
from ups.dimse.messages import (
    CEchoRQ,
    CEchoRSP,
    CFindRSP,
    Message,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
    encode_command,
)
from ups.dimse.provider import DimseProvider, ProviderSettings
from ups.dimse.provider_events import (
    Aborted,
    Closed,
    CloseTransport,
    Established,
    PauseReading,
    ProviderEvent,
    Rejected,
    RequestFailed,
    RequestReceived,
    RequestRejected,
    ResetTransport,
    ResponseReceived,
    ResumeReading,
)
from ups.dimse.responses import response_for_field
from ups.pdu.items import AsyncOpsWindow, PresentationContextRQ, UserInformation
from ups.pdu.negotiation import AcceptorPolicy, SyntaxSupport
from ups.pdu.pdus import AAssociateRQ

E = TypeVar("E")

VERIFICATION = "1.2.840.10008.1.1"
UPS_PUSH = "1.2.840.10008.5.1.4.34.6.1"
UPS_QUERY = "1.2.840.10008.5.1.4.34.6.5"
IMPLICIT_LE = "1.2.840.10008.1.2"
IUID = "1.2.826.0.1.3680043.9.7433.2.1"
ECHO_CID, PUSH_CID, QUERY_CID = 1, 3, 5

SETTINGS = ProviderSettings(
    accept_timeout=5.0,
    request_timeout=5.0,
    release_timeout=5.0,
    response_timeout=10.0,
    reaper_period=1.0,
    pdu_timeout=30.0,
    so_close_delay=0.05,
)


def policy(*, performed: int = 1, invoked: int = 1, ae: str = "SCP") -> AcceptorPolicy:
    support = SyntaxSupport((IMPLICIT_LE,), requestor_scu=True, requestor_scp=True)
    return AcceptorPolicy(
        ae_titles=frozenset({ae}),
        supported={uid: support for uid in (VERIFICATION, UPS_PUSH, UPS_QUERY)},
        max_pdata_length=16384,
        implementation_class_uid="1.2.3.4",
        max_ops_invoked=invoked,
        max_ops_performed=performed,
    )


def associate_rq(*, called: str = "SCP", invoked: int = 1, performed: int = 1) -> AAssociateRQ:
    window = None if (invoked, performed) == (1, 1) else AsyncOpsWindow(invoked, performed)
    return AAssociateRQ(
        called,
        "SCU",
        tuple(
            PresentationContextRQ(cid, uid, (IMPLICIT_LE,))
            for cid, uid in ((ECHO_CID, VERIFICATION), (PUSH_CID, UPS_PUSH), (QUERY_CID, UPS_QUERY))
        ),
        UserInformation(16384, "1.2.3.4", async_ops_window=window),
    )


@dataclass(slots=True)
class Performed:
    """The user's record of a request it performs (what ``RequestContext`` is in net)."""

    message_id: int
    context_id: int
    request: Request
    cancelled: bool = False


Performer = Callable[["Side", RequestReceived], None]


def answer_at_once(side: Side, event: RequestReceived) -> None:
    """C-ECHO and N-SET answered at once with success; anything else is kept."""
    request = event.request
    if isinstance(request, CEchoRQ):
        side.core.respond(CEchoRSP(request.message_id, 0, VERIFICATION), event.context_id)
    elif isinstance(request, NSetRQ):
        side.core.respond(NSetRSP(request.message_id, 0, UPS_PUSH, IUID), event.context_id)
    else:
        side.take_on(event)


def take_on_all(side: Side, event: RequestReceived) -> None:
    """Every request is taken on (``perform``) and answered later by the test."""
    side.take_on(event)


@dataclass
class Side:
    """One core with the events it gave, the requests it took on and its transport."""

    name: str
    core: DimseProvider
    performer: Performer = answer_at_once
    events: list[ProviderEvent] = field(default_factory=list)
    performing: dict[int, Performed] = field(default_factory=dict)
    inbox: bytearray = field(default_factory=bytearray)  # sent to us, not yet read
    reading: bool = True
    closing: bool = False  # we closed our end: our last bytes go, then EOF
    lost: bool = False
    resets: int = 0

    def take_on(self, event: RequestReceived) -> Performed:
        request = event.request
        performed = Performed(getattr(request, "message_id", 0), event.context_id, request)
        self.performing[performed.message_id] = performed
        self.core.perform(performed)
        return performed

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def responses(self, message_id: int | None = None) -> list[Response]:
        return [
            e.response
            for e in self.events
            if isinstance(e, ResponseReceived) and message_id in (None, e.message_id)
        ]

    def failures(self) -> dict[int, ProviderError]:
        return {e.message_id: e.cause for e in self.events if isinstance(e, RequestFailed)}

    @property
    def closed(self) -> bool:
        return bool(self.events) and isinstance(self.events[-1], Closed)

    @property
    def failure(self) -> ProviderError | None:
        for event in self.events:
            if isinstance(event, Aborted | Rejected):
                return event.cause
        return None

    def drain(self) -> None:
        core = self.core
        while (event := core.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, RequestReceived):
                self.performer(self, event)
            elif isinstance(event, RequestRejected):  # answered as the adapter does
                response = response_for_field(
                    event.command_field, event.message_id, event.status, event.comment
                )
                assert response is not None
                core.respond(response, event.context_id)
            elif isinstance(event, PauseReading):
                self.reading = False
            elif isinstance(event, ResumeReading):
                self.reading = True
            elif isinstance(event, CloseTransport):
                self.closing = True
            elif isinstance(event, ResetTransport):
                self.resets += 1


class Pair:
    """A requestor and an acceptor core, the network between them and the clock."""

    def __init__(
        self,
        *,
        requestor: ProviderSettings = SETTINGS,
        acceptor: ProviderSettings = SETTINGS,
        acceptor_policy: AcceptorPolicy | None = None,
        rq: AAssociateRQ | None = None,
        performer: Performer = answer_at_once,
    ) -> None:
        self.now = 0.0
        self.rq = rq or associate_rq()
        self.req = Side("requestor", DimseProvider(requestor, requestor=True))
        self.acc = Side(
            "acceptor",
            DimseProvider(acceptor, requestor=False, policy=acceptor_policy or policy()),
            performer,
        )
        self.wire_open = True  # False: the network drops everything (a silent peer)

    def open(self, *, establish: bool = True) -> Pair:
        self.req.core.associate(self.rq, self.now)
        self.req.core.connection_made(self.now, "127.0.0.1:11112")
        self.acc.core.connection_made(self.now, "127.0.0.1:40000")
        self.settle()
        if establish:
            assert self.req.of(Established) and self.acc.of(Established), self.req.events
        return self

    def sides(self) -> tuple[Side, Side]:
        return self.req, self.acc

    def other(self, side: Side) -> Side:
        return self.acc if side is self.req else self.req

    def settle(self) -> None:
        """Drain events and move bytes both ways until nothing changes."""
        for _ in range(10_000):
            moved = False
            for side in self.sides():
                side.drain()
                moved |= self.transfer(side, self.other(side))
            if not moved:
                return
        raise AssertionError("the pair never settled")

    def transfer(self, side: Side, peer: Side) -> bool:
        """Move what ``side`` wrote to ``peer`` (if it reads), and carry a close or a reset
        across; True if anything moved."""
        moved = False
        out = side.core.data_to_send()
        if side.resets and not side.lost:
            self._lose(side)
            self._lose(peer)
            return True
        if out and not side.lost and self.wire_open and not peer.lost:
            peer.inbox += out
            moved = True
        if peer.inbox and peer.reading and not peer.lost:
            data = bytes(peer.inbox)
            peer.inbox.clear()
            peer.core.receive_data(data, self.now)
            moved = True
        if side.closing and not side.lost:
            # Our close: what we wrote is delivered; then both ends see the close.
            self._lose(side)
            moved = True
        if side.lost and not peer.lost and not side.inbox and not peer.inbox:
            self._lose(peer)
            moved = True
        return moved

    def _lose(self, side: Side) -> None:
        if not side.lost:
            side.lost = True
            side.core.connection_lost(self.now)

    def advance(self, seconds: float) -> None:
        """Move the clock by ``seconds``, firing every deadline on the way, in order."""
        target = self.now + seconds
        while True:
            due = [
                d
                for side in self.sides()
                if (d := side.core.next_deadline()) is not None and d <= target
            ]
            if not due:
                break
            self.now = max(self.now, min(due))
            for side in self.sides():
                deadline = side.core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    side.core.handle_timer(self.now)
            self.settle()
        self.now = target
        self.settle()

    def send(self, request: Request, context_id: int, *, stream: bool = False) -> None:
        self.req.core.send_request(request, context_id, self.now, stream=stream)
        self.settle()

    def echo(self) -> int:
        message_id = self.req.core.new_message_id()
        self.send(CEchoRQ(message_id), ECHO_CID)
        return message_id


def final_statuses(side: Side) -> dict[int, int]:
    found = {}
    for event in side.events:
        if isinstance(event, ResponseReceived) and event.final:
            found[event.message_id] = event.response.status
    return found


def find_rsp(message_id: int, status: int) -> CFindRSP:
    return CFindRSP(message_id, status, UPS_QUERY)


class Lone:
    """One core fed by a scripted peer's bytes; what it writes is kept in ``sent``.

    With ``closes`` the transport closes as soon as the core asks (``connection_lost``
    follows at once); without it the close hangs, as with a peer that never reads.
    """

    def __init__(
        self,
        settings: ProviderSettings = SETTINGS,
        *,
        requestor: bool = False,
        acceptor_policy: AcceptorPolicy | None = None,
        performer: Performer = answer_at_once,
        closes: bool = True,
    ) -> None:
        self.now = 0.0
        core = DimseProvider(
            settings, requestor=requestor, policy=None if requestor else acceptor_policy or policy()
        )
        self.side = Side("lone", core, performer)
        self.sent = bytearray()
        self.core = core
        self.closes = closes
        self.close_asked: float | None = None
        self.reset_asked: float | None = None

    def connect(self, rq: AAssociateRQ | None = None) -> Lone:
        if self.core.requestor:
            self.core.associate(rq or associate_rq(), self.now)
        self.core.connection_made(self.now, "127.0.0.1:40000")
        self.pump()
        return self

    def pump(self) -> None:
        side = self.side
        side.drain()
        self.sent += self.core.data_to_send()
        if side.closing and self.close_asked is None:
            self.close_asked = self.now
        if side.resets and self.reset_asked is None:
            self.reset_asked = self.now
        if (side.resets or (side.closing and self.closes)) and not side.lost:
            side.lost = True
            self.core.connection_lost(self.now)
            side.drain()

    def feed(self, data: bytes) -> None:
        self.core.receive_data(data, self.now)
        self.pump()

    def take(self) -> bytes:
        out = bytes(self.sent)
        self.sent.clear()
        return out

    def advance(self, seconds: float) -> None:
        """Move the clock, firing the core's deadlines on the way, in order."""
        target = self.now + seconds
        while (deadline := self.core.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
            self.pump()
        self.now = target


def wire(*messages: tuple[Message, int]) -> bytes:
    """The P-DATA-TFs a peer sends for ``messages`` ((message, context ID) pairs)."""
    return b"".join(
        encode_pdata(cid, encode_command(message), message.dataset, 16384)
        for message, cid in messages
    )


def answers(data: bytes) -> list[tuple[int, int]]:
    """(Message ID Being Responded To, Status) of each response in ``data``, in order;
    every command fits one PDV here."""
    found: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        kind, length = data[pos], int.from_bytes(data[pos + 2 : pos + 6], "big")
        body, pos = data[pos + 6 : pos + 6 + length], pos + 6 + length
        at = 0
        while kind == 0x04 and at < len(body):
            size = int.from_bytes(body[at : at + 4], "big")
            control, fragment = body[at + 5], body[at + 6 : at + 4 + size]
            at += 4 + size
            if control & 0x01:
                command = decode_command_set(bytes(fragment))
                found.append(
                    (int(command[MESSAGE_ID_BEING_RESPONDED_TO]), int(command[STATUS]))  # type: ignore[arg-type]
                )
    return found
