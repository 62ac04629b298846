"""The NATS JetStream sink: a listener's events into a stream, answered once JetStream has them.

:class:`NatsSink` is a batch consumer for :func:`~ups.services.listener.serve_events`
and ``dcmups -L --nats``. Per read of an association the listener hands it the read's
events (``add``) and commits them once (``commit``); the commit publishes every event
(all sent first, pipelined on one connection, each with a reply subject of the batch's
own: the read's HPUB commands go to nats-py's outgoing buffer in one call, nats-py's
``publish`` being the fallback), then waits for JetStream's acknowledgements, and only
then does the listener answer the N-EVENT-REPORTs with Success. One publisher task sends
whatever was committed since it last ran, and one timer watches the oldest batch's
deadline. An acknowledgement means the stream stored the message (or already held it: a
duplicate), so an event the sender saw acknowledged is in the stream. What is published
is :mod:`ups.services.sinks.messages` (the ``--json`` line, a subject per event type,
headers, the ``Nats-Msg-Id`` that makes a resent event a duplicate).

Broker down or slow. While the connection is down a commit fails at once; a batch whose
acknowledgements do not all arrive within ``ack_timeout`` seconds, or that JetStream
answers with an error, fails then. A failed batch raises :class:`SinkUnavailable`, which
the listener answers with 0x0213 Resource limitation (PS3.7 C.5.13; PS3.7 has no 0xA700
for N-EVENT-REPORT, so this is the general "out of resources, try again" status the
listener already gives an over-limit data set): the sender keeps the events and sends
them again. Some of them may have been stored all the same (the acknowledgement was what
got lost); their second copy carries the same ``Nats-Msg-Id`` and JetStream drops it
within the stream's duplicate window (``duplicate_window``, 120 s by default, set when
this sink creates the stream; an existing stream keeps its own and a shorter one is
logged). One log line (logger ``ups.services.sinks``) says when an outage begins and one
when it ends; nothing is logged per event. nats-py reconnects by itself (forever, every
``reconnect_wait`` seconds); on reconnecting the sink checks the stream (creating it
again if the server lost it) and publishes work again.

Memory: the events of unfinished commits are bounded by the listener (``buffer``); here
a batch is a list of ready messages plus one future and one timer, removed when it
settles, and nothing is sent while the connection is down (nats-py's reconnect buffer
stays empty), so late acknowledgements of a failed batch find nothing and are dropped.

nats-py is imported when the sink starts, so the rest of the package does not need it
(``pip install 'dcmups[nats]'``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ups.dimse.status import Status
from ups.services.errors import ServiceError, UPSError
from ups.services.events import UPSEvent
from ups.services.sinks.messages import EventMessages, check_subject, default_stream

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_DUPLICATE_WINDOW",
    "NatsSink",
    "SinkConnectError",
    "SinkStats",
    "SinkUnavailable",
]

log = logging.getLogger("ups.services.sinks")

RESOURCE_LIMITATION: Final = int(Status.RESOURCE_LIMITATION)
DEFAULT_ACK_TIMEOUT = 2.0
"""Seconds a batch may wait for JetStream's acknowledgements before it is refused."""
DEFAULT_DUPLICATE_WINDOW = 120.0
"""Seconds JetStream remembers a ``Nats-Msg-Id`` (its own default; covers our SCP's
longest resend delay, ``--retry-max`` 60 s, twice over)."""
_HEADROOM = 4096
"""Bytes kept free under the server's max_payload for the headers."""

Message = tuple[str, bytes, dict[str, str]]


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


class _Batch:
    """One commit: what to send, the acknowledgements still due, its future."""

    __slots__ = (
        "token",
        "wire",
        "messages",
        "count",
        "remaining",
        "duplicates",
        "done",
        "deadline",
    )

    def __init__(
        self,
        token: str,
        wire: bytes,
        messages: list[Message],
        count: int,
        done: asyncio.Future[None],
        now: float,
    ) -> None:
        self.token = token
        self.wire = wire
        """The batch's HPUB commands, ready for the connection (nats-py's buffer)."""
        self.messages = messages
        """Or the messages, for nats-py's ``publish`` (a nats-py without that buffer)."""
        self.count = self.remaining = count
        self.duplicates = 0
        self.done = done
        self.deadline = now
        """When it was committed; refused ``ack_timeout`` later if not acknowledged."""


class NatsSink:
    """Publishes a listener's events to a JetStream stream; see the module docstring.

    ``async with NatsSink(url, "ups.events") as sink: async with serve_events(sink, ...)``.
    ``stream`` defaults to the subject in capitals with ``_`` for ``.`` (``UPS_EVENTS``);
    it is created (file storage, subjects ``<subject>.>``) when no stream takes the
    subjects yet, otherwise the existing one is used as it is.
    """

    wants_json_model = True
    """The listener renders the data set once while checking it (the payload's model)."""

    def __init__(
        self,
        url: str,
        subject: str = "ups.events",
        *,
        stream: str | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
        name: str = "dcmups listener",
    ) -> None:
        for what, value in (
            ("ack_timeout", ack_timeout),
            ("duplicate_window", duplicate_window),
            ("connect_timeout", connect_timeout),
            ("reconnect_wait", reconnect_wait),
        ):
            if not value > 0:
                raise ValueError(f"{what} must be greater than 0")
        self.url = url
        self.subject = check_subject(subject)
        self.stream = stream or default_stream(subject)
        self.stats = SinkStats()
        self._ack_timeout = ack_timeout
        self._duplicate_window = duplicate_window
        self._connect_timeout = connect_timeout
        self._reconnect_wait = reconnect_wait
        self._name = name
        self._messages = EventMessages(subject)
        self._open: list[Message] = []  # this read's events (nats-py's publish)
        self._commands: list[bytes] = []  # or their HPUB commands (nats-py's buffer)
        self._reply = b""  # the open batch's reply subject, token last
        self._wire = False
        self._queue: list[_Batch] = []  # committed, not sent yet
        self._sent: dict[str, _Batch] = {}  # sent, acknowledgements due (oldest first)
        self._wake: asyncio.Future[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._serial = 0
        self._nc: Client | None = None
        self._inbox = ""
        self._closed = False
        self._outage: float | None = None
        self._outage_refused = 0
        self._checking: asyncio.Task[None] | None = None
        self._max_payload = 1024 * 1024
        self._publish_errors: tuple[type[BaseException], ...] = (OSError,)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> NatsSink:
        """Connect and make sure the stream exists; :class:`SinkConnectError` if not."""
        try:
            import nats.errors
            from nats.aio.client import Client
        except ImportError as exc:
            needs = "the NATS sink needs nats-py: pip install 'dcmups[nats]'"
            raise SinkConnectError(needs) from exc
        self._publish_errors = (nats.errors.Error, OSError)
        nc = Client()
        options: dict[str, object] = {}
        if "skip_subject_validation" in inspect.signature(nc.connect).parameters:
            options["skip_subject_validation"] = True  # ours are checked once, here
        causes: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            if self._nc is None:
                causes.append(exc)  # while starting: the reason to give
            # afterwards the outage is reported once, by the disconnection and the batches

        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=[self.url],
                    name=self._name,
                    connect_timeout=max(1, math.ceil(self._connect_timeout)),
                    # nats-py sleeps this many seconds; its annotation says int, 0.5 works
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    **options,  # type: ignore[arg-type]
                ),
                self._connect_timeout,
            )
        except Exception as exc:
            await nc.close()
            cause = str(causes[-1] if causes else exc) or "timed out"
            raise SinkConnectError(f"cannot reach NATS at {self.url}: {cause}") from exc
        try:
            self._inbox = nc.new_inbox() + "."
            await nc.subscribe(self._inbox + "*", cb=self._on_ack)
            self._nc = nc
            self._max_payload = int(nc.max_payload)
            self._wire = _has_command_buffer(nc)
            self.stream = await asyncio.wait_for(self._ensure_stream(), self._connect_timeout)
        except Exception as exc:
            self._nc = None
            await nc.close()
            raise SinkConnectError(f"NATS at {self.url}: no usable stream: {exc!r}") from exc
        self._publishing = asyncio.get_running_loop().create_task(self._publisher(nc))
        return self

    async def close(self) -> None:
        """Close the connection; a commit still waiting is refused (0x0213)."""
        self._closed = True
        for task in (self._checking, self._publishing):
            if task is not None:
                task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._fail_all("the NATS sink is closed")
        nc, self._nc = self._nc, None
        if nc is not None:
            await nc.close()

    async def __aenter__(self) -> NatsSink:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def available(self) -> bool:
        """Connected, and no outage in progress."""
        nc = self._nc
        return nc is not None and nc.is_connected and self._outage is None

    async def _ensure_stream(self) -> str:
        """The stream that takes our subjects: created if none does (idempotent)."""
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        assert self._nc is not None
        js = self._nc.jetstream()
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject}.>"],
            storage=StorageType.FILE,
            duplicate_window=self._duplicate_window,
        )
        try:
            await js.add_stream(config)
            return self.stream
        except BadRequestError:
            pass  # the name has another configuration, or another stream has the subjects
        names = {await js.find_stream_name_by_subject(s) for s in self._messages.subjects}
        if len(names) != 1:
            raise SinkConnectError(f"the subjects {self.subject}.> span streams {sorted(names)}")
        (name,) = names
        window = (await js.stream_info(name)).config.duplicate_window or 0.0
        if window < self._duplicate_window:
            log.warning(
                "NATS stream %s drops duplicates for %.0f s only (%.0f s asked): an event "
                "resent later is stored twice",
                name,
                window,
                self._duplicate_window,
            )
        return name

    # -------------------------------------------------------------- the batch consumer

    def add(self, event: UPSEvent) -> None:
        if not self._commands and not self._open:  # a new batch: its own reply subject
            self._serial += 1
            self._reply = f"{self._inbox}{self._serial}".encode("ascii")
        if not self._wire:
            subject, payload, headers = self._messages(event)
            if len(payload) > self._max_payload - _HEADROOM:
                raise ValueError(f"event of {len(payload)} bytes is over NATS max_payload")
            self._open.append((subject, payload, headers))
            return
        command = self._messages.command(event, self._reply)
        if len(command) > self._max_payload:
            raise ValueError(f"event of {len(command)} bytes is over NATS max_payload")
        self._commands.append(command)

    def commit(self) -> Awaitable[None] | None:
        """The read's events, to publish: a future done once JetStream has them all.

        No task per batch: the batch joins the queue of the sink's one publisher task,
        which sends every batch committed since it last ran, and the acknowledgements
        settle the future.
        """
        commands, self._commands = self._commands, []
        messages, self._open = self._open, []
        count = len(commands) or len(messages)
        if not count:
            return None
        nc = self._nc
        if nc is None or not nc.is_connected:
            reason = "the NATS sink is closed" if self._closed else "not connected"
            raise self._unavailable(reason, count)
        loop = asyncio.get_running_loop()
        token = self._reply[len(self._inbox) :].decode("ascii")
        wire = b"".join(commands)
        batch = _Batch(token, wire, messages, count, loop.create_future(), loop.time())
        self._queue.append(batch)
        if self._timer is None:
            self._arm(batch.deadline)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return batch.done

    async def _publisher(self, nc: Client) -> None:
        """Sends the committed batches, all of them at each wake-up, then sleeps again."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake = loop.create_future()
                await self._wake
            batches, self._queue = self._queue, []
            for batch in batches:
                if batch.done.done():
                    continue  # refused meanwhile (the connection went down)
                self._sent[batch.token] = batch
                try:
                    await self._send(nc, batch)
                except self._publish_errors as exc:
                    self._fail(batch, f"publish failed: {exc!r}")
                except Exception as exc:  # a bug must not stop the publisher
                    log.exception("NATS publish failed")
                    self._fail(batch, f"publish failed: {exc!r}")
            if self._wire:
                await nc._flush_pending()  # one write for all of them

    async def _send(self, nc: Client, batch: _Batch) -> None:
        if batch.wire:
            wire, batch.wire = batch.wire, b""
            await nc._send_command(wire)
            return
        reply = self._inbox + batch.token
        messages, batch.messages = batch.messages, []
        for subject, payload, headers in messages:
            await nc.publish(subject, payload, reply=reply, headers=headers)

    # -------------------------------------------------------------- acknowledgements

    async def _on_ack(self, msg: Msg) -> None:
        batch = self._sent.get(msg.subject[len(self._inbox) :])
        if batch is None:
            return  # a batch already answered (timed out, failed): its sender resends
        data = msg.data
        headers = msg.headers
        if (headers and headers.get("Status")) or b'"error"' in data:
            status = headers.get("Status") if headers else None
            if status == "503":  # no responders: no stream takes the subject (any more)
                self._check_stream()
            self._fail(batch, f"JetStream: {status or data[:120].decode('utf-8', 'replace')}")
            return
        if b'"duplicate"' in data:
            batch.duplicates += 1
        batch.remaining -= 1
        if batch.remaining:
            return
        del self._sent[batch.token]
        self.stats.published += batch.count
        self.stats.duplicates += batch.duplicates
        self.stats.batches += 1
        if not batch.done.done():
            batch.done.set_result(None)
        if self._outage is not None:
            self._recovered()

    def _arm(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(deadline + self._ack_timeout, self._sweep)

    def _sweep(self) -> None:
        """One timer for every batch: refuse those past their deadline, re-arm for the next.

        Batches are committed, sent and kept in order, so the oldest comes first.
        """
        self._timer = None
        limit = asyncio.get_running_loop().time() - self._ack_timeout
        for batch in [*self._sent.values(), *self._queue]:
            if batch.done.done():
                continue
            if batch.deadline > limit:
                self._arm(batch.deadline)
                return
            self._fail(batch, f"no acknowledgement within {self._ack_timeout:g} s")

    def _fail(self, batch: _Batch, reason: str) -> None:
        self._sent.pop(batch.token, None)
        if not batch.done.done():
            batch.done.set_exception(self._unavailable(reason, batch.count))

    def _fail_all(self, reason: str) -> int:
        """Refuse every batch not yet acknowledged; how many there were."""
        batches = [*self._sent.values(), *self._queue]
        self._queue = []
        for batch in batches:
            self._fail(batch, reason)
        return len(batches)

    # -------------------------------------------------------------- outages

    def _unavailable(self, reason: str, count: int) -> SinkUnavailable:
        """Count ``count`` refused events; the first refusal of an outage logs one line."""
        self.stats.refused += count
        if self._outage is None and not self._closed:
            self._outage = time.monotonic()
            self._outage_refused = 0
            self.stats.outages += 1
            log.warning(
                "NATS at %s unavailable (%s): events are answered 0213 until it is back",
                self.url,
                reason,
            )
        self._outage_refused += count
        return SinkUnavailable(f"NATS unavailable: {reason}")

    def _recovered(self) -> None:
        assert self._outage is not None
        took = time.monotonic() - self._outage
        self._outage = None
        log.warning(
            "NATS at %s is back after %.1f s; %d events were answered 0213 meanwhile",
            self.url,
            took,
            self._outage_refused,
        )

    async def _on_disconnected(self) -> None:
        if self._nc is None or self._closed:
            return
        # The acknowledgements still due will not come: refuse those batches now.
        if not self._fail_all("connection lost"):
            self._unavailable("connection lost", 0)

    async def _on_reconnected(self) -> None:
        self._check_stream()

    def _check_stream(self) -> None:
        """Check (or create again) the stream in the background; back in service if it is."""
        if self._closed or (self._checking is not None and not self._checking.done()):
            return
        self._checking = asyncio.get_running_loop().create_task(self._stream_check())

    async def _stream_check(self) -> None:
        try:
            await asyncio.wait_for(self._ensure_stream(), self._ack_timeout)
        except Exception as exc:  # still away: the next reconnection or 503 tries again
            log.debug("NATS stream check failed: %r", exc)
            return
        if self._outage is not None:
            self._recovered()


def _has_command_buffer(nc: Client) -> bool:
    """Whether nats-py takes ready protocol commands (``_send_command``, ``_flush_pending``).

    Both have been there since nats-py 2.0 (this package needs 2.6). Handing it a read's
    HPUB commands at once costs a third of calling ``publish`` per event, which validates
    and re-encodes what :mod:`~ups.services.sinks.messages` already made safe; a nats-py
    without them gets ``publish``. ``tests/services/sinks`` checks that this path is the
    one taken and that both store the same messages.
    """
    return callable(getattr(nc, "_send_command", None)) and callable(
        getattr(nc, "_flush_pending", None)
    )
