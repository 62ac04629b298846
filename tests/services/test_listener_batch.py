"""The listener's batch consumer: a read's events are added, committed once, then answered.

This is the daemon's delivery path (DESIGN.md: writes are batched per read): the
Success responses may leave only after ``commit`` returned, all in the read's one write;
a failing ``commit`` answers every event of the batch with Processing Failure (or the
status of the ServiceError it raised). An asynchronous ``commit`` (a broker's
acknowledgements) is answered when it completes, while the association reads on, with
at most ``buffer`` events in unfinished commits.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from bench import rawpdu
from tests.net.memtransport import MemoryTransport, open_acceptor, responses
from ups.net.association import Association
from ups.services.errors import ServiceError
from ups.services.events import UPSEvent
from ups.services.listener import EventListener
from ups.services.settings import ListenerSettings

PROCESSING_FAILURE = 0x0110
RESOURCE_LIMITATION = 0x0213


class Recorder:
    """A batch consumer that logs what it is asked, and when relative to the writes."""

    def __init__(self, transport: list[MemoryTransport], fail_commit: bool = False) -> None:
        self.log: list[str] = []
        self.events: list[UPSEvent] = []
        self._transport = transport
        self._fail_commit = fail_commit

    def add(self, event: UPSEvent) -> None:
        if event.message_id == 3:
            raise ValueError("cannot take this one")
        self.events.append(event)
        self.log.append(f"add {event.message_id}")

    def commit(self) -> None:
        self.log.append(f"commit after {len(self._transport[0].writes)} writes")
        if self._fail_commit:
            raise OSError("disk full")


def _listener(recorder: Recorder) -> tuple[EventListener, Association, MemoryTransport]:
    listener = EventListener(
        ("127.0.0.1", 0), "SCP", ListenerSettings(window=16), consumer=recorder
    )
    handlers = {uid: listener._on_request for uid in (rawpdu.UPS_EVENT,)}
    association = Association(
        listener.config, requestor=False, policy=listener.policy, handlers=handlers
    )
    transport = open_acceptor(association, rawpdu.UPS_EVENT, window=16)
    return listener, association, transport


def _events(count: int) -> bytes:
    template = rawpdu.event_template()
    return b"".join(template.stamped(i + 1) for i in range(count))


def _statuses(data: bytes) -> dict[int, int]:
    return {
        int.from_bytes(r[0x0120], "little"): int.from_bytes(r[0x0900], "little")
        for r in responses(data)
    }


async def test_a_read_is_committed_once_then_answered_in_one_write() -> None:
    holder: list[MemoryTransport] = []
    recorder = Recorder(holder)
    listener, association, transport = _listener(recorder)
    holder.append(transport)
    association.data_received(_events(8))
    assert recorder.log == [f"add {i}" for i in (1, 2, 4, 5, 6, 7, 8)] + ["commit after 0 writes"]
    assert len(transport.writes) == 1
    statuses = _statuses(transport.writes[0])
    assert statuses == {i: (PROCESSING_FAILURE if i == 3 else 0) for i in range(1, 9)}
    assert listener.stats.events == 7 and listener.stats.failed == 1
    assert {e.iuid for e in recorder.events} == {rawpdu.SAMPLE_WORKITEM_UID}
    association.abort()


async def test_a_failed_commit_answers_the_whole_batch_with_a_failure() -> None:
    holder: list[MemoryTransport] = []
    recorder = Recorder(holder, fail_commit=True)
    listener, association, transport = _listener(recorder)
    holder.append(transport)
    association.data_received(_events(4))
    assert _statuses(transport.writes[0]) == dict.fromkeys(range(1, 5), PROCESSING_FAILURE)
    assert listener.stats.events == 0
    association.abort()


def _event_with(dataset: bytes, message_id: int = 1) -> bytes:
    command = rawpdu.n_event_report_rq(message_id)
    return b"".join(rawpdu.fragmented(1, command, dataset, 16384))


def _items(count: int) -> bytes:
    """(0040,4018) Scheduled Workitem Code Sequence, undefined length, ``count`` empty items."""
    head = struct.pack("<HHI", 0x0040, 0x4018, 0xFFFFFFFF)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return head + item * count + end


async def test_events_beyond_a_limit_or_malformed_are_refused_and_never_consumed() -> None:
    holder: list[MemoryTransport] = []
    recorder = Recorder(holder)
    listener, association, transport = _listener(recorder)
    holder.append(transport)
    association.data_received(_event_with(_items(10_001), 1))
    association.data_received(_event_with(rawpdu.state_report_dataset()[:-3], 2))
    statuses = _statuses(b"".join(transport.writes))
    assert statuses == {1: RESOURCE_LIMITATION, 2: PROCESSING_FAILURE}
    assert recorder.events == [] and listener.stats.refused == 2
    association.abort()


async def test_the_json_model_comes_from_the_scanner() -> None:
    holder: list[MemoryTransport] = []
    recorder = Recorder(holder)
    listener = EventListener(("127.0.0.1", 0), "SCP", consumer=recorder, with_json=True)
    handlers = {rawpdu.UPS_EVENT: listener._on_request}
    association = Association(
        listener.config, requestor=False, policy=listener.policy, handlers=handlers
    )
    transport = open_acceptor(association, rawpdu.UPS_EVENT)
    holder.append(transport)
    association.data_received(_events(1))
    (event,) = recorder.events
    assert event.dataset_json == {
        "00404041": {"vr": "CS", "Value": ["READY"]},
        "00741000": {"vr": "CS", "Value": ["IN PROGRESS"]},
    }
    assert not event.raw_dataset or not event.raw_dataset.is_decoded  # pydicom never ran
    association.abort()


# ------------------------------------------------------------------------ asynchronous commits


class Deferring:
    """A batch consumer whose ``commit`` returns a future that the test completes."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.commits: list[asyncio.Future[None]] = []
        self._open: list[int] = []

    def add(self, event: UPSEvent) -> None:
        self._open.append(event.message_id)

    def commit(self) -> asyncio.Future[None]:
        self.batches.append(self._open)
        self._open = []
        self.commits.append(asyncio.get_running_loop().create_future())
        return self.commits[-1]


class PausingTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.reading: list[bool] = []

    def pause_reading(self) -> None:
        self.reading.append(False)

    def resume_reading(self) -> None:
        self.reading.append(True)


def _deferring_listener(
    buffer: int = 1000,
) -> tuple[Deferring, EventListener, Association, MemoryTransport]:
    consumer = Deferring()
    listener = EventListener(
        ("127.0.0.1", 0), "SCP", ListenerSettings(window=16, buffer=buffer), consumer=consumer
    )
    association = Association(
        listener.config,
        requestor=False,
        policy=listener.policy,
        handlers={rawpdu.UPS_EVENT: listener._on_request},
    )
    transport = open_acceptor(association, rawpdu.UPS_EVENT, window=16)
    return consumer, listener, association, transport


def _events_from(first: int, count: int) -> bytes:
    template = rawpdu.event_template()
    return b"".join(template.stamped(first + i) for i in range(count))


async def _loop_passes(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_an_async_commit_is_answered_when_it_completes_while_reading_goes_on() -> None:
    consumer, listener, association, transport = _deferring_listener()
    association.data_received(_events_from(1, 4))
    association.data_received(_events_from(5, 4))  # read while the first commit is open
    assert consumer.batches == [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert transport.writes == []
    consumer.commits[1].set_result(None)
    await _loop_passes()
    assert len(transport.writes) == 1  # the batch's answers share one write
    assert _statuses(transport.writes[0]) == dict.fromkeys(range(5, 9), 0)
    consumer.commits[0].set_exception(ServiceError(RESOURCE_LIMITATION, "broker away"))
    await _loop_passes()
    assert _statuses(b"".join(transport.writes[1:])) == dict.fromkeys(
        range(1, 5), RESOURCE_LIMITATION
    )
    assert listener.stats.events == 4 and listener.stats.failed == 4
    association.abort()


async def test_a_commit_that_fails_otherwise_is_a_processing_failure() -> None:
    consumer, listener, association, transport = _deferring_listener()
    association.data_received(_events_from(1, 2))
    consumer.commits[0].set_exception(OSError("gone"))
    await _loop_passes()
    assert _statuses(b"".join(transport.writes)) == dict.fromkeys((1, 2), PROCESSING_FAILURE)
    association.abort()


async def test_unfinished_commits_are_bounded_by_the_buffer() -> None:
    consumer = Deferring()
    listener = EventListener(
        ("127.0.0.1", 0), "SCP", ListenerSettings(window=16, buffer=6), consumer=consumer
    )
    association = Association(
        listener.config,
        requestor=False,
        policy=listener.policy,
        handlers={rawpdu.UPS_EVENT: listener._on_request},
    )
    transport = PausingTransport()
    association.connection_made(transport)  # type: ignore[arg-type]
    association.data_received(rawpdu.associate_rq("RAW", "SCP", rawpdu.UPS_EVENT, window=16))
    association.data_received(_events_from(1, 4))
    assert transport.reading == []  # 4 of 6 in unfinished commits
    association.data_received(_events_from(5, 4))
    assert transport.reading == [False]  # 8: no more reading
    consumer.commits[0].set_result(None)
    await _loop_passes()
    assert transport.reading == [False]  # 4 left, above half the buffer
    consumer.commits[1].set_result(None)
    await _loop_passes()
    assert transport.reading == [False, True]  # drained: read again
    assert listener.stats.events == 8
    association.abort()


async def test_a_graceful_stop_waits_for_unfinished_commits_and_answers_them() -> None:
    consumer, listener, association, transport = _deferring_listener()
    association.data_received(_events_from(1, 3))
    listener.stop()
    await _loop_passes()
    assert listener._shutdown_task is not None and not listener._shutdown_task.done()
    consumer.commits[0].set_result(None)
    await asyncio.wait_for(listener.wait_closed(), 5)
    assert _statuses(b"".join(transport.writes)) == dict.fromkeys((1, 2, 3), 0)
    association.abort()


class Calling:
    """A batch consumer with ``commit_then``: it completes a commit by calling back."""

    def __init__(self, refuse: bool = False) -> None:
        self._open: list[int] = []
        self.batches: list[list[int]] = []
        self.done: list[Callable[[BaseException | None], None]] = []
        self._refuse = refuse

    def add(self, event: UPSEvent) -> None:
        self._open.append(event.message_id)

    def commit(self) -> None:
        raise AssertionError("commit_then is used when the consumer has it")

    def commit_then(self, done: Callable[[BaseException | None], None]) -> bool:
        if self._refuse:
            raise ServiceError(RESOURCE_LIMITATION, "broker away")
        if not self._open:
            return False
        self.batches.append(self._open)
        self._open = []
        self.done.append(done)
        return True


def _calling_listener(consumer: Calling) -> tuple[EventListener, Association, MemoryTransport]:
    listener = EventListener(
        ("127.0.0.1", 0), "SCP", ListenerSettings(window=16), consumer=consumer
    )
    association = Association(
        listener.config,
        requestor=False,
        policy=listener.policy,
        handlers={rawpdu.UPS_EVENT: listener._on_request},
    )
    return listener, association, open_acceptor(association, rawpdu.UPS_EVENT, window=16)


async def test_commit_then_answers_from_the_callback_with_no_future_between() -> None:
    consumer = Calling()
    listener, association, transport = _calling_listener(consumer)
    association.data_received(_events_from(1, 3))
    association.data_received(_events_from(4, 2))
    assert consumer.batches == [[1, 2, 3], [4, 5]] and transport.writes == []
    consumer.done[1](None)
    assert listener.stats.events == 2 and listener._committing == 3  # counted at once
    assert len(transport.writes) == 1  # the batch's answers: one write, in this callback
    assert _statuses(transport.writes[0]) == {4: 0, 5: 0}
    consumer.done[0](ServiceError(RESOURCE_LIMITATION, "no acknowledgement"))
    assert len(transport.writes) == 2
    assert _statuses(b"".join(transport.writes)) == {
        **dict.fromkeys((1, 2, 3), RESOURCE_LIMITATION),
        4: 0,
        5: 0,
    }
    assert listener.stats.failed == 3 and listener._committing == 0
    association.abort()


async def test_commit_then_refusing_at_once_answers_the_read_with_its_status() -> None:
    consumer = Calling(refuse=True)
    listener, association, transport = _calling_listener(consumer)
    association.data_received(_events_from(1, 2))
    assert _statuses(b"".join(transport.writes)) == dict.fromkeys((1, 2), RESOURCE_LIMITATION)
    assert listener._committing == 0 and listener.stats.failed == 2
    association.abort()
