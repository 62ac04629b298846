"""Failure responses for any request: the runtime's one way to say "no" (PS3.7 Annex C).

When a handler is missing, raises, or a request cannot be served, the peer still gets
the response its request calls for, with a failure status and an Error Comment. The
response class is the request's Command Field with the response bit (PS3.7 E.1), and
the identifying fields it shares with the request are copied across: Affected SOP
Class/Instance (from the request's Affected or Requested ones), Event/Action Type ID.
"""

from __future__ import annotations

from ups.dimse.codec import RESPONSE_BIT
from ups.dimse.messages import MESSAGE_TYPES, CCancelRQ, Request, Response

ERROR_COMMENT_LIMIT = 64
"""Error Comment (0000,0902) is LO: at most 64 characters."""

_COPIED = {
    "affected_sop_class_uid": ("affected_sop_class_uid", "requested_sop_class_uid"),
    "affected_sop_instance_uid": ("affected_sop_instance_uid", "requested_sop_instance_uid"),
    "event_type_id": ("event_type_id",),
    "action_type_id": ("action_type_id",),
}


def response_for_field(
    command_field: int, message_id: int, status: int, comment: str = ""
) -> Response | None:
    """A bare response to request ``command_field`` (None if it has no response type)."""
    cls = MESSAGE_TYPES.get(command_field | RESPONSE_BIT)
    if cls is None or command_field & RESPONSE_BIT:
        return None
    return cls(  # type: ignore[call-arg,return-value]
        message_id_being_responded_to=message_id,
        status=status,
        error_comment=comment[:ERROR_COMMENT_LIMIT] or None,
    )


def failure_response(request: Request, status: int, comment: str = "") -> Response:
    """The response to ``request`` carrying ``status`` and an optional Error Comment."""
    if isinstance(request, CCancelRQ):
        raise TypeError("C-CANCEL-RQ has no response")
    cls = MESSAGE_TYPES[request.COMMAND_FIELD | RESPONSE_BIT]
    wanted = cls.__dataclass_fields__
    kwargs: dict[str, object] = {
        "message_id_being_responded_to": request.message_id,
        "status": status,
        "error_comment": comment[:ERROR_COMMENT_LIMIT] or None,
    }
    for field, sources in _COPIED.items():
        if field in wanted:
            for source in sources:
                value = getattr(request, source, None)
                if value is not None:
                    kwargs[field] = value
                    break
    return cls(**kwargs)  # type: ignore[arg-type,return-value]
