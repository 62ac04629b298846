"""The sink's JetStream administration, through nats-py: the stream that takes its subjects.

Run at start, after a reconnection and when a publish finds no stream (503), never per
event, so nats-py's cost does not matter here and its JetStream API saves writing ours.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ups.services.sinks.batch import SinkConnectError

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = ["ensure_stream"]

log = logging.getLogger("ups.services.sinks")


async def ensure_stream(
    nc: Client, stream: str, subject: str, subjects: Sequence[str], duplicate_window: float
) -> str:
    """The name of the stream that takes ``<subject>.>``: ``stream``, created (file
    storage, ``duplicate_window``) when no stream takes the subjects yet (idempotent), or
    the existing one, used as it is (a shorter duplicate window than asked is logged)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import BadRequestError

    js = nc.jetstream()
    config = StreamConfig(
        name=stream,
        subjects=[f"{subject}.>"],
        storage=StorageType.FILE,
        duplicate_window=duplicate_window,
    )
    try:
        await js.add_stream(config)
        return stream
    except BadRequestError:
        pass  # the name has another configuration, or another stream has the subjects
    names = {await js.find_stream_name_by_subject(s) for s in subjects}
    if len(names) != 1:
        raise SinkConnectError(f"the subjects {subject}.> span streams {sorted(names)}")
    (name,) = names
    window = (await js.stream_info(name)).config.duplicate_window or 0.0
    if window < duplicate_window:
        log.warning(
            "NATS stream %s drops duplicates for %.0f s only (%.0f s asked): an event "
            "resent later is stored twice",
            name,
            window,
            duplicate_window,
        )
    return name
