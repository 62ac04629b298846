"""What the NATS sink keeps per commit, its counters and its errors.

Kept apart from the connection logic (:mod:`ups.services.sinks.jetstream`): a
:class:`Batch` is a counter of acknowledgements still due and one way to complete the
commit (the listener's future, or its callback, ``commit_then``), so the per-event path
touches an integer and the per-batch path one object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ups.dimse.status import Status
from ups.services.errors import ServiceError, UPSError

__all__ = ["Batch", "Done", "PublishArgs", "SinkConnectError", "SinkStats", "SinkUnavailable"]

log = logging.getLogger("ups.services.sinks")

RESOURCE_LIMITATION: Final = int(Status.RESOURCE_LIMITATION)

PublishArgs = tuple[str, bytes, dict[str, str]]
"""(subject, payload, headers): one event for nats-py's ``publish``."""
Done = asyncio.Future[None] | Callable[[BaseException | None], None]
"""How a commit is completed: its future, or a callback (``commit_then``)."""


class SinkUnavailable(ServiceError):
    """The broker is away or did not acknowledge in time: answered 0x0213, try again."""

    def __init__(self, comment: str) -> None:
        super().__init__(RESOURCE_LIMITATION, comment[:64])


class SinkConnectError(UPSError):
    """The sink could not start: the broker is unreachable, or the stream unusable."""


@dataclass(slots=True)
class SinkStats:
    """Counters since the sink started."""

    published: int = 0
    """Events JetStream acknowledged (stored now, or earlier: see ``duplicates``)."""
    duplicates: int = 0
    """Of those, copies JetStream already held and dropped (a resent event)."""
    refused: int = 0
    """Events refused with 0x0213 (broker away, slow or in error)."""
    batches: int = 0
    """Commits acknowledged (``published / batches`` events were pipelined per commit)."""
    outages: int = 0
    """Times the broker went away (each logged once, and once when it came back)."""


class Batch:
    """One commit: the acknowledgements still due, and how to complete it."""

    __slots__ = ("token", "messages", "count", "remaining", "duplicates", "done", "deadline")

    def __init__(
        self,
        token: bytes,
        messages: list[PublishArgs],
        count: int,
        done: Done,
        now: float,
    ) -> None:
        self.token = token
        self.messages = messages
        """For nats-py's ``publish`` (a URL the own connection does not take)."""
        self.count = self.remaining = count
        self.duplicates = 0
        self.done: Done | None = done
        self.deadline = now
        """When it was committed; refused ``ack_timeout`` later if not acknowledged."""

    @property
    def settled(self) -> bool:
        done = self.done
        return done is None or (isinstance(done, asyncio.Future) and done.done())

    def settle(self, exc: BaseException | None) -> None:
        """Complete the commit (once): the future, or the listener's callback, now."""
        done = self.done
        if isinstance(done, asyncio.Future):
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)
            return
        if done is not None:
            self.done = None
            try:
                done(exc)
            except Exception:  # the listener's; it must not break the connection's read
                log.exception("the commit callback failed")
