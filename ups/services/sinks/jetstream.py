"""The NATS JetStream sink: a listener's events into a stream, answered once JetStream has them.

:class:`NatsSink` is a batch consumer for :func:`~ups.services.listener.serve_events`
and ``dcmups -L --nats``. Per read of an association the listener hands it the read's
events (``add``) and commits them once (``commit``); the commit publishes every event
(pipelined, each with a reply subject of the batch's own), JetStream acknowledges each,
and only when all of a batch's acknowledgements are in does the listener answer its
N-EVENT-REPORTs with Success. One timer watches the oldest batch's deadline. An
acknowledgement means the stream stored the message (or already held it: a duplicate),
so an event the sender saw acknowledged is in the stream. What is published is
:mod:`ups.services.sinks.messages` (the ``--json`` line, a subject per event type,
headers, the ``Nats-Msg-Id`` that makes a resent event a duplicate).

Two connections. nats-py runs the JetStream API: it creates or checks the stream at start,
after a reconnection and when a publish finds no stream. The events go over a connection
of the sink's own (:mod:`~ups.services.sinks.natslink`, the protocol in
:mod:`~ups.services.sinks.natsproto`): ``commit`` writes the read's ``HPUB`` commands to
it in one call, and the acknowledgements are counted in the callback that reads them.
Through nats-py the same work cost twice the listener's CPU per event (its parser,
``Msg`` objects, a queue and a task per subscription message, a task to publish); the
figures are in the closing note of issue 13. A URL the own connection does not take
(``tls://``, several servers) publishes through nats-py's ``publish`` instead.

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
when it ends; nothing is logged per event. Both connections reconnect by themselves
(forever, every ``reconnect_wait`` seconds); on reconnecting the sink checks the stream
(creating it again if the server lost it) and publishes work again. A batch whose
acknowledgements are overdue makes the sink PING the broker: a connection on which
nothing at all arrives within ``ack_timeout`` more is dropped and made again.

Memory: the events of unfinished commits are bounded by the listener (``buffer``); here
a batch is a counter and one future, removed when it settles; nothing is sent while the
connection is down, and a commit is refused while more than ``MAX_UNSENT`` bytes wait
for a broker that does not read them. Late acknowledgements of a failed batch find
nothing and are dropped.

nats-py is imported when the sink starts, so the rest of the package does not need it
(``pip install 'dcmups[nats]'``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

from ups.services.events import UPSEvent
from ups.services.sinks.batch import (
    Batch,
    Done,
    PublishArgs,
    SinkConnectError,
    SinkStats,
    SinkUnavailable,
)
from ups.services.sinks.messages import EventMessages, check_subject, default_stream
from ups.services.sinks.natslink import NatsLink, NatsLinkError, open_link
from ups.services.sinks.natsproto import Message, NatsAddress, parse_address
from ups.services.sinks.streams import ensure_stream

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = [
    "DEFAULT_ACK_TIMEOUT",
    "DEFAULT_DUPLICATE_WINDOW",
    "MAX_UNSENT",
    "NatsSink",
    "SinkConnectError",
    "SinkStats",
    "SinkUnavailable",
]

log = logging.getLogger("ups.services.sinks")

DEFAULT_ACK_TIMEOUT = 2.0
"""Seconds a batch may wait for JetStream's acknowledgements before it is refused."""
DEFAULT_DUPLICATE_WINDOW = 120.0
"""Seconds JetStream remembers a ``Nats-Msg-Id`` (its own default; covers our SCP's
longest resend delay, ``--retry-max`` 60 s, twice over)."""
MAX_UNSENT: Final = 8 * 1024 * 1024
"""Bytes written to the broker and not yet taken by it past which commits are refused."""
_HEADROOM = 4096
"""Bytes kept free under the server's max_payload for the headers."""


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
        self._address: NatsAddress | None = parse_address(url)
        """Where the own publishing connection goes; None: publish through nats-py."""
        self._inbox = f"_INBOX.{secrets.token_hex(11)}."
        self._inbox_bytes = self._inbox.encode("ascii")
        self._open: list[PublishArgs] = []  # this read's events (nats-py's publish)
        self._commands: list[bytes] = []  # or their HPUB commands (the own connection)
        self._reply = b""  # the open batch's reply subject, token last
        self._queue: list[Batch] = []  # committed, not sent yet (nats-py's publish)
        self._sent: dict[bytes, Batch] = {}  # acknowledgements due, oldest first
        self._wake: asyncio.Future[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._relinking: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._serial = 0
        self._nc: Client | None = None
        self._link: NatsLink | None = None
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
            self._nc = nc
            self._max_payload = int(nc.max_payload)
            self.stream = await asyncio.wait_for(self._ensure_stream(), self._connect_timeout)
            if self._address is not None:
                self._link = await self._open_link()
            else:
                await nc.subscribe(self._inbox + "*", cb=self._on_ack)
                loop = asyncio.get_running_loop()
                self._publishing = loop.create_task(self._publisher(nc))
        except Exception as exc:
            self._nc = None
            await nc.close()
            if isinstance(exc, NatsLinkError):
                raise SinkConnectError(f"cannot publish to NATS at {self.url}: {exc}") from exc
            raise SinkConnectError(f"NATS at {self.url}: no usable stream: {exc!r}") from exc
        return self

    async def close(self) -> None:
        """Close the connections; a commit still waiting is refused (0x0213)."""
        self._closed = True
        for task in (self._checking, self._publishing, self._relinking):
            if task is not None:
                task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._fail_all("the NATS sink is closed")
        link, self._link = self._link, None
        if link is not None:
            link.close()
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
        return self._outage is None and self._connected()

    async def _ensure_stream(self) -> str:
        assert self._nc is not None
        return await ensure_stream(
            self._nc, self.stream, self.subject, self._messages.subjects, self._duplicate_window
        )

    # -------------------------------------------------------------- the own connection

    async def _open_link(self) -> NatsLink:
        assert self._address is not None
        link = await open_link(
            self._address,
            name=self._name,
            inbox=self._inbox_bytes + b"*",
            timeout=self._connect_timeout,
            on_message=self._on_message,
            on_error=self._on_server_error,
            on_lost=self._on_link_lost,
        )
        self._max_payload = link.reader.max_payload
        return link

    def _on_link_lost(self, exc: BaseException | None) -> None:
        self._link = None
        if self._closed:
            return
        # The acknowledgements still due will not come: refuse those batches now.
        if not self._fail_all("connection lost"):
            self._unavailable("connection lost", 0)
        if self._relinking is None or self._relinking.done():
            self._relinking = asyncio.get_running_loop().create_task(self._relink())

    async def _relink(self) -> None:
        """Connect again every ``reconnect_wait`` seconds until it works or the sink closes."""
        while not self._closed:
            await asyncio.sleep(self._reconnect_wait)
            try:
                link = await self._open_link()
            except NatsLinkError as exc:
                log.debug("NATS reconnection failed: %s", exc)
                continue
            if self._closed:
                link.close()
                return
            self._link = link
            self._check_stream()
            return

    def _on_server_error(self, text: str) -> None:
        """An ``-ERR`` on an open connection (a publish it refused): one line per outage."""
        self._unavailable(f"NATS server error: {text}", 0)

    # -------------------------------------------------------------- the batch consumer

    def add(self, event: UPSEvent) -> None:
        if not self._commands and not self._open:  # a new batch: its own reply subject
            self._serial += 1
            self._reply = b"%s%d" % (self._inbox_bytes, self._serial)
        if self._address is None:
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
        """The read's events, to publish: a future done once JetStream has them all."""
        if not self._commands and not self._open:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commit(future)
        return future

    def commit_then(self, done: Callable[[BaseException | None], None]) -> bool:
        """``commit``, completed by calling ``done(None)``, or ``done(error)`` if refused.

        ``done`` is called from the callback that read the batch's last acknowledgement
        (or from the timer that gave up on it), so the listener answers the events in
        the same loop pass, with no future in between. False: nothing was added, and
        ``done`` is not called. A refusal at once (the broker is away) is raised here.
        """
        return self._commit(done)

    def _commit(self, done: Done) -> bool:
        """On the own connection the read's commands are written here, in one call, and
        the acknowledgements settle the batch as they are read. Through nats-py the batch
        joins the queue of the sink's one publisher task."""
        commands, self._commands = self._commands, []
        messages, self._open = self._open, []
        count = len(commands) or len(messages)
        if not count:
            return False
        token = self._reply[len(self._inbox_bytes) :]
        now = asyncio.get_running_loop().time()
        if self._address is not None:
            link = self._link
            if link is None or not link.connected:
                reason = "the NATS sink is closed" if self._closed else "not connected"
                raise self._unavailable(reason, count)
            if link.unsent() > MAX_UNSENT:
                raise self._unavailable("the broker is not reading", count)
            batch = Batch(token, messages, count, done, now)
            self._sent[token] = batch
            if self._timer is None:
                self._arm(now)
            link.write(b"".join(commands))
            return True
        nc = self._nc
        if nc is None or not nc.is_connected:
            reason = "the NATS sink is closed" if self._closed else "not connected"
            raise self._unavailable(reason, count)
        batch = Batch(token, messages, count, done, now)
        self._queue.append(batch)
        if self._timer is None:
            self._arm(now)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)
        return True

    async def _publisher(self, nc: Client) -> None:
        """nats-py's way: sends the committed batches at each wake-up, then sleeps again."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake = loop.create_future()
                await self._wake
            batches, self._queue = self._queue, []
            for batch in batches:
                if batch.settled:
                    continue  # refused meanwhile (the connection went down)
                self._sent[batch.token] = batch
                reply = self._inbox + batch.token.decode("ascii")
                messages, batch.messages = batch.messages, []
                try:
                    for subject, payload, headers in messages:
                        await nc.publish(subject, payload, reply=reply, headers=headers)
                except self._publish_errors as exc:
                    self._fail(batch, f"publish failed: {exc!r}")
                except Exception as exc:  # a bug must not stop the publisher
                    log.exception("NATS publish failed")
                    self._fail(batch, f"publish failed: {exc!r}")

    # -------------------------------------------------------------- acknowledgements

    def _on_message(self, msg: Message) -> None:
        """An acknowledgement read by the own connection (the per-event path)."""
        batch = self._sent.get(msg.subject[len(self._inbox_bytes) :])
        if batch is None:
            return  # a batch already answered (timed out, failed): its sender resends
        data = msg.payload
        status = _status_of(msg.headers) if msg.headers else None
        if status or b'"error"' in data:
            self._refused(batch, status, data)
            return
        if b'"duplicate"' in data:
            batch.duplicates += 1
        batch.remaining -= 1
        if not batch.remaining:
            self._acknowledged(batch)

    async def _on_ack(self, msg: Msg) -> None:
        """An acknowledgement through nats-py (a URL the own connection does not take)."""
        batch = self._sent.get(msg.subject[len(self._inbox) :].encode("ascii"))
        if batch is None:
            return
        data = msg.data
        headers = msg.headers
        if (headers and headers.get("Status")) or b'"error"' in data:
            self._refused(batch, headers.get("Status") if headers else None, data)
            return
        if b'"duplicate"' in data:
            batch.duplicates += 1
        batch.remaining -= 1
        if not batch.remaining:
            self._acknowledged(batch)

    def _refused(self, batch: Batch, status: str | None, data: bytes) -> None:
        if status == "503":  # no responders: no stream takes the subject (any more)
            self._check_stream()
        self._fail(batch, f"JetStream: {status or data[:120].decode('utf-8', 'replace')}")

    def _acknowledged(self, batch: Batch) -> None:
        del self._sent[batch.token]
        stats = self.stats
        stats.published += batch.count
        stats.duplicates += batch.duplicates
        stats.batches += 1
        batch.settle(None)
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
        overdue = False
        for batch in [*self._sent.values(), *self._queue]:
            if batch.settled:
                continue
            if batch.deadline > limit:
                self._arm(batch.deadline)
                break
            overdue = True
            self._fail(batch, f"no acknowledgement within {self._ack_timeout:g} s")
        if overdue and self._link is not None:
            self._link.probe(self._ack_timeout)  # a hung broker: drop it, connect again

    def _fail(self, batch: Batch, reason: str) -> None:
        self._sent.pop(batch.token, None)
        if not batch.settled:
            batch.settle(self._unavailable(reason, batch.count))

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
        if self._nc is None or self._closed or self._address is not None:
            return  # the own connection reports its own loss
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
        if self._outage is not None and self._connected():
            self._recovered()

    def _connected(self) -> bool:
        """The connection that publishes is up: the own one, or nats-py's."""
        if self._address is None:
            return self._nc is not None and self._nc.is_connected
        return self._link is not None and self._link.connected


def _status_of(headers: bytes) -> str | None:
    """The status code of a header block (``NATS/1.0 503``), or None if it has none."""
    first = headers[: headers.find(b"\r\n")] if headers else b""
    code = first[9:12]
    return code.decode("ascii", "replace") if code else None
