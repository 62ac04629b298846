"""Sinks: where a listener's events go beyond the process, committed before they are answered.

A sink is an :class:`~ups.services.events.EventBatchConsumer` whose ``commit`` returns an
awaitable: :func:`~ups.services.listener.serve_events` takes it in place of a callback and
answers each read's events once the commit completed.

* :class:`NatsSink` (``jetstream``) — NATS JetStream, with the message rules in
  ``messages``: the ``--json`` line as payload, a subject per event type, headers, and a
  ``Nats-Msg-Id`` that makes a resent event a duplicate. nats-py is needed only when a
  sink starts (``pip install 'dcmups[nats]'``).
"""

from ups.services.sinks.jetstream import (
    NatsSink,
    SinkConnectError,
    SinkStats,
    SinkUnavailable,
)

__all__ = ["NatsSink", "SinkConnectError", "SinkStats", "SinkUnavailable"]
