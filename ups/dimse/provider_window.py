"""Our side of the Asynchronous Operations Window: Message IDs and the requests we invoke.

PS3.7 D.3.3.3: the requestor and acceptor each negotiate how many operations one may
invoke before the other answers. ``OurWindow`` keeps the requests we sent and await a
response for (``pending``, with the time each was sent or last answered, for the
reaper), the places left in the window (``slots``; None is unlimited), and the
requests that wait for a place or for the transport to drain (``queued``, oldest
first). Message IDs are unique among outstanding requests (PS3.7 §9.1.1.1).

It is bookkeeping only: ``provider.DimseProvider`` decides when to send and what an
answer or a failure means.
"""

from __future__ import annotations

from ups.dimse.messages import Request


class Outgoing:
    """One request of ours: queued, then sent (``sent_at``), until its final response."""

    __slots__ = (
        "request",
        "message_id",
        "context_id",
        "stream",
        "sent_at",
        "abandoned",
        "cancelled",
    )

    def __init__(self, request: Request, message_id: int, context_id: int, stream: bool) -> None:
        self.request = request
        self.message_id = message_id
        self.context_id = context_id
        self.stream = stream
        """Pending responses are reported too (C-FIND); otherwise only the final one."""
        self.sent_at = 0.0
        self.abandoned = False
        """Its caller has gone: answers are absorbed, the window place freed at the end."""
        self.cancelled = False  # C-CANCEL-RQ sent

    def describe(self) -> str:
        return f"{type(self.request).__name__} (message ID {self.message_id})"


class OurWindow:
    """The requests we invoke, bounded by the window the peer granted us."""

    __slots__ = ("pending", "queued", "slots", "_next_id")

    def __init__(self) -> None:
        self.pending: dict[int, Outgoing] = {}
        self.queued: dict[int, Outgoing] = {}  # insertion order is sending order
        self.slots: int | None = None
        self._next_id = 0

    def set_window(self, max_ops_invoked: int) -> None:
        """The negotiated Maximum Number Operations Invoked (0 = unlimited)."""
        self.slots = max_ops_invoked if max_ops_invoked else None

    def new_message_id(self) -> int | None:
        """A Message ID no outstanding request uses, or None if all 65535 are taken."""
        for _ in range(0x10000):
            self._next_id = self._next_id % 0xFFFF + 1
            candidate = self._next_id
            if candidate not in self.pending and candidate not in self.queued:
                return candidate
        return None

    def outstanding(self, message_id: int) -> bool:
        return message_id in self.pending or message_id in self.queued

    def has_place(self) -> bool:
        return self.slots is None or self.slots > 0

    def sent(self, outgoing: Outgoing, now: float) -> None:
        """``outgoing`` goes on the wire now and takes a place until its final response."""
        if self.slots is not None:
            self.slots -= 1
        outgoing.sent_at = now
        self.pending[outgoing.message_id] = outgoing

    def answered(self, message_id: int) -> None:
        """The final response to ``message_id`` arrived: its place is free again."""
        del self.pending[message_id]
        if self.slots is not None:
            self.slots += 1

    def next_queued(self) -> Outgoing | None:
        """The oldest queued request, taken off the queue, if a place is free for it."""
        queued = self.queued
        if not queued or not self.has_place():
            return None
        return queued.pop(next(iter(queued)))

    def overdue(self, now: float, limit: float) -> Outgoing | None:
        """The first request whose response is ``limit`` or more overdue (-rspTO)."""
        for outgoing in self.pending.values():
            if now - outgoing.sent_at >= limit:
                return outgoing
        return None

    def take_all(self) -> list[int]:
        """Every outstanding Message ID (sent, then queued); the window is then empty."""
        found = [*self.pending, *self.queued]
        self.pending.clear()
        self.queued.clear()
        return found
