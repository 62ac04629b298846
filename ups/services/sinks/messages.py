"""What a sink publishes for one UPS event: subject, headers, message ID and payload.

Kept apart from the connection (:mod:`ups.services.sinks.jetstream`) so that the rules
are plain functions a test checks without a broker.

* **Payload**: the event's ``dcmups -L --json`` line (:class:`~ups.services.eventjson.
  JsonLineRenderer`, byte for byte, without the newline).
* **Subject**: ``<base>.<event>`` with one suffix per Event Type ID (PS3.4 CC.2.4.1):
  ``state-report``, ``cancel-requested``, ``progress-report``, ``scp-status-change``,
  ``assigned``; a consumer subscribes to ``<base>.>`` or to one kind.
* **Headers**: ``Ups-Event-Type`` (the Event Type ID), ``Ups-Sop-Instance-Uid`` (the UPS,
  the Affected SOP Instance UID) and ``Ups-Calling-Ae`` (the SCP that sent it), so a
  consumer can route without parsing the payload.
* **Nats-Msg-Id** (JetStream's de-duplication key, :func:`message_id`): calling AE, UPS
  instance, Event Type ID and a BLAKE2b digest of the Event Information bytes. An SCP
  that lost our response sends the same report again (the same data set, perhaps on a
  new association with a new Message ID), and JetStream drops the copy within the
  stream's duplicate window. The Message ID cannot serve: it is reused on every
  association. The data set bytes must: two different reports about one UPS (IN
  PROGRESS, then COMPLETED; progress 40 %, then 60 %) share the other three parts. The
  UPS UID is in the command set, not the data set, so it is needed too, and the
  calling AE keeps two SCPs that report the same UPS apart. Two byte-identical reports
  of one kind about one UPS from one SCP within the window are one event to a consumer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

from ups.services.eventjson import JsonLineRenderer
from ups.services.events import UPSEvent

__all__ = [
    "SUBJECT_SUFFIXES",
    "EventMessages",
    "check_subject",
    "default_stream",
    "header_value",
    "hpub",
    "message_id",
]

SUBJECT_SUFFIXES: Final[dict[int, str]] = {
    1: "state-report",
    2: "cancel-requested",
    3: "progress-report",
    4: "scp-status-change",
    5: "assigned",
}
"""Event Type ID (PS3.4 CC.2.4.1) -> the last token of the subject it is published on."""

_DIGEST_BYTES = 16
_SAFE_HEADER = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def check_subject(subject: str) -> str:
    """``subject`` if it can be a base subject (dot-separated tokens, no wildcards)."""
    tokens = subject.split(".")
    if not subject or any(not t or t in ("*", ">") for t in tokens):
        raise ValueError(f"not a NATS subject to publish under: {subject!r}")
    if any(not c.isascii() or not c.isprintable() or c.isspace() for c in subject):
        raise ValueError(f"a NATS subject is printable ASCII without spaces: {subject!r}")
    return subject


def default_stream(subject: str) -> str:
    """The stream name made from the base subject: ``ups.events`` -> ``UPS_EVENTS``."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in subject).upper()


def header_value(text: str) -> str:
    """``text`` as a header value: printable ASCII kept, anything else %-escaped.

    AE titles and UIDs come from the sender; a CR/LF must not become a header of its own
    (and nats-py strips a value's outer spaces, so those are escaped too).
    """
    if _PLAIN.fullmatch(text):
        return text
    return quote(text, safe=_SAFE_HEADER)


_PLAIN = re.compile(r"[!-$&-~](?:[ -$&-~]*[!-$&-~])?")
"""Printable ASCII without ``%``, not starting or ending with a space: kept as it is."""


def message_id(event: UPSEvent) -> str:
    """The ``Nats-Msg-Id``: ``<calling AE>:<UPS UID>:<event type>:<digest of the data set>``.

    The AE title comes first and may itself hold a colon; the other three never do.
    """
    return _message_id(event, header_value(event.calling_aet), header_value(event.iuid))


def _message_id(event: UPSEvent, calling_aet: str, iuid: str) -> str:
    raw = event.raw_dataset
    digest = hashlib.blake2b(raw.raw if raw is not None else b"", digest_size=_DIGEST_BYTES)
    return f"{calling_aet}:{iuid}:{event.event_type_id:d}:{digest.hexdigest()}"


class EventMessages:
    """Builds (subject, payload, headers) per event; what repeats is made once."""

    __slots__ = ("_subjects", "_render", "_senders", "_sender_bytes", "_commands")

    def __init__(self, subject: str, render: Callable[[UPSEvent], str] | None = None) -> None:
        base = check_subject(subject)
        self._subjects = {k: f"{base}.{suffix}" for k, suffix in SUBJECT_SUFFIXES.items()}
        self._render = render or JsonLineRenderer()
        self._senders: dict[str, str] = {}  # calling AE title -> its header value
        self._sender_bytes: dict[str, bytes] = {}  # the same, encoded (``command``)
        self._commands = {  # Event Type ID -> (b"HPUB <subject> ", b"<id>", header line)
            k: (
                f"HPUB {subject} ".encode("ascii"),
                b"%d" % k,
                b"\r\nUps-Event-Type: %d\r\nUps-Sop-Instance-Uid: " % k,
            )
            for k, subject in self._subjects.items()
        }

    @property
    def subjects(self) -> list[str]:
        """Every subject this publishes on."""
        return list(self._subjects.values())

    def __call__(self, event: UPSEvent) -> tuple[str, bytes, dict[str, str]]:
        subject, payload, sender, iuid = self._parts(event)
        headers = {
            "Nats-Msg-Id": _message_id(event, sender, iuid),
            "Ups-Event-Type": _TYPES[event.event_type_id],
            "Ups-Sop-Instance-Uid": iuid,
            "Ups-Calling-Ae": sender,
        }
        return subject, payload, headers

    def command(self, event: UPSEvent, reply: bytes) -> bytes:
        """``hpub(*self(event))`` with ``reply``, made in one go: the sink's per-event path.

        Made as bytes from parts kept per event type (``HPUB <subject> ``, the type's
        header line) and per calling AE; only the UPS, the digest and the payload are new.
        """
        kind = event.event_type_id
        parts = self._commands.get(kind)
        if parts is None:  # the listener refuses other types before they get here
            raise ValueError(f"no subject for Event Type ID {kind}")
        payload = self._render(event).encode("utf-8", "backslashreplace")
        sender = self._sender_bytes.get(event.calling_aet)
        if sender is None:
            if len(self._sender_bytes) > 1024:
                self._sender_bytes.clear()
            sender = header_value(event.calling_aet).encode("ascii")
            self._sender_bytes[event.calling_aet] = sender
        iuid = event.iuid
        uid = (iuid if _PLAIN.fullmatch(iuid) else header_value(iuid)).encode("ascii")
        raw = event.raw_dataset
        digest = hashlib.blake2b(raw.raw if raw is not None else b"", digest_size=_DIGEST_BYTES)
        head = b"NATS/1.0\r\nNats-Msg-Id: %s:%s:%s:%s%s%s\r\nUps-Calling-Ae: %s\r\n\r\n" % (
            sender,
            uid,
            parts[1],
            digest.hexdigest().encode("ascii"),
            parts[2],
            uid,
            sender,
        )
        size = len(head)
        return b"%s%s %d %d\r\n%s%s\r\n" % (
            parts[0],
            reply,
            size,
            size + len(payload),
            head,
            payload,
        )

    def _parts(self, event: UPSEvent) -> tuple[str, bytes, str, str]:
        subject = self._subjects.get(event.event_type_id)
        if subject is None:  # the listener refuses other types before they get here
            raise ValueError(f"no subject for Event Type ID {event.event_type_id}")
        payload = self._render(event).encode("utf-8", "backslashreplace")
        sender = self._senders.get(event.calling_aet)
        if sender is None:
            if len(self._senders) > 1024:
                self._senders.clear()
            sender = self._senders[event.calling_aet] = header_value(event.calling_aet)
        return subject, payload, sender, header_value(event.iuid)


_TYPES: Final = {k: str(k) for k in SUBJECT_SUFFIXES}


def hpub(subject: str, reply: bytes, headers: dict[str, str], payload: bytes) -> bytes:
    """One message as the NATS client protocol sends it with headers (``HPUB``).

    The line ``HPUB <subject> <reply> <header bytes> <total bytes>``, the header block
    (``NATS/1.0``, one ``Key: value`` line per header, an empty line), the payload; every
    line ends in CR LF, the header size counts the block and the total adds the payload.
    Subjects are checked when the sink is made and header values by :func:`header_value`,
    so nothing here can break a line.
    """
    block = "".join([f"{key}: {value}\r\n" for key, value in headers.items()])
    head = f"NATS/1.0\r\n{block}\r\n".encode("ascii")
    size = len(head)
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject.encode("ascii"),
        reply,
        size,
        size + len(payload),
        head,
        payload,
    )
