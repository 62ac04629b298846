"""``dcmups -L --nats``: the listener's events into NATS JetStream instead of stdout.

``--nats URL`` (``nats://host:4222``) and ``--subject S`` (``ups.events``) choose where;
``--nats-stream``, ``--nats-timeout`` and ``--nats-dedupe`` tune the stream name, the
acknowledgement timeout and the duplicate window of a stream the sink creates. The sink is
:class:`ups.services.sinks.NatsSink`, the one the library offers; each ``--workers``
process opens its own connection. Its outage lines (one when the broker goes away, one
when it is back) go to stderr like the daemon's other lines.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ups.cli.exits import UsageError
from ups.services.sinks import NatsSink
from ups.services.sinks.jetstream import DEFAULT_ACK_TIMEOUT, DEFAULT_DUPLICATE_WINDOW
from ups.services.sinks.messages import check_subject

__all__ = ["NatsTarget", "nats_target", "sink_lines_to_stderr"]


@dataclass(frozen=True, slots=True)
class NatsTarget:
    """Where ``-L --nats`` publishes; ``sink()`` makes a (not yet started) sink."""

    url: str
    subject: str = "ups.events"
    stream: str | None = None
    ack_timeout: float = DEFAULT_ACK_TIMEOUT
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW

    def sink(self) -> NatsSink:
        return NatsSink(
            self.url,
            self.subject,
            stream=self.stream,
            ack_timeout=self.ack_timeout,
            duplicate_window=self.duplicate_window,
        )


def nats_target(args: argparse.Namespace) -> NatsTarget | None:
    """The ``--nats`` options, checked; None without ``--nats``."""
    tuning = (args.nats_stream, args.nats_timeout, args.nats_dedupe)
    if not args.nats:
        if args.subject is not None or any(value is not None for value in tuning):
            raise UsageError("--subject and --nats-* need --nats URL")
        return None
    subject = args.subject if args.subject is not None else "ups.events"
    try:
        check_subject(subject)
    except ValueError as exc:
        raise UsageError(f"--subject: {exc}") from None
    for name, value in (("--nats-timeout", args.nats_timeout), ("--nats-dedupe", args.nats_dedupe)):
        if value is not None and not value > 0:
            raise UsageError(f"{name} must be greater than 0")
    return NatsTarget(
        url=args.nats,
        subject=subject,
        stream=args.nats_stream,
        ack_timeout=args.nats_timeout or DEFAULT_ACK_TIMEOUT,
        duplicate_window=args.nats_dedupe or DEFAULT_DUPLICATE_WINDOW,
    )


class _SayHandler(logging.Handler):
    def __init__(self, say: Callable[[str], None], prefix: str) -> None:
        super().__init__(logging.INFO)
        self._say = say
        self._prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        self._say(f"{self._prefix}{record.getMessage()}")


def sink_lines_to_stderr(say: Callable[[str], None], worker: int | None) -> None:
    """The sink's lines as ``dcmups: ...`` lines through ``say``, once per process."""
    logger = logging.getLogger("ups.services.sinks")
    if not any(isinstance(h, _SayHandler) for h in logger.handlers):
        who = f"worker {worker} " if worker is not None else ""
        logger.addHandler(_SayHandler(say, f"dcmups: {who}"))
        logger.setLevel(logging.INFO)
        logger.propagate = False
