"""Failure responses for any request: the runtime's one way to say "no" (PS3.7 Annex C).

When a handler is missing, raises, or a request cannot be served, the peer still gets
the response its request calls for, with a failure status and an Error Comment.
"""

from __future__ import annotations

from ups.dimse.messages import (
    CCancelRQ,
    CEchoRQ,
    CEchoRSP,
    CFindRQ,
    CFindRSP,
    CStoreRQ,
    CStoreRSP,
    NActionRQ,
    NActionRSP,
    NCreateRQ,
    NCreateRSP,
    NDeleteRQ,
    NDeleteRSP,
    NEventReportRQ,
    NEventReportRSP,
    NGetRQ,
    NGetRSP,
    NSetRQ,
    NSetRSP,
    Request,
    Response,
)

ERROR_COMMENT_LIMIT = 64
"""Error Comment (0000,0902) is LO: at most 64 characters."""


def failure_response(request: Request, status: int, comment: str = "") -> Response:
    """The response to ``request`` carrying ``status`` and an optional Error Comment."""
    text = comment[:ERROR_COMMENT_LIMIT] or None
    if isinstance(request, CEchoRQ):
        return CEchoRSP(request.message_id, status, request.affected_sop_class_uid, text)
    if isinstance(request, CFindRQ):
        return CFindRSP(request.message_id, status, request.affected_sop_class_uid, text)
    if isinstance(request, CStoreRQ):
        return CStoreRSP(
            request.message_id,
            status,
            request.affected_sop_class_uid,
            request.affected_sop_instance_uid,
            text,
        )
    if isinstance(request, NEventReportRQ):
        return NEventReportRSP(
            request.message_id,
            status,
            request.affected_sop_class_uid,
            request.affected_sop_instance_uid,
            request.event_type_id,
            text,
        )
    if isinstance(request, NGetRQ):
        return NGetRSP(
            request.message_id,
            status,
            request.requested_sop_class_uid,
            request.requested_sop_instance_uid,
            text,
        )
    if isinstance(request, NSetRQ):
        return NSetRSP(
            request.message_id,
            status,
            request.requested_sop_class_uid,
            request.requested_sop_instance_uid,
            text,
        )
    if isinstance(request, NActionRQ):
        return NActionRSP(
            request.message_id,
            status,
            request.requested_sop_class_uid,
            request.requested_sop_instance_uid,
            request.action_type_id,
            text,
        )
    if isinstance(request, NCreateRQ):
        return NCreateRSP(
            request.message_id,
            status,
            request.affected_sop_class_uid,
            request.affected_sop_instance_uid,
            text,
        )
    if isinstance(request, NDeleteRQ):
        return NDeleteRSP(
            request.message_id,
            status,
            request.requested_sop_class_uid,
            request.requested_sop_instance_uid,
            text,
        )
    assert not isinstance(request, CCancelRQ), "C-CANCEL-RQ has no response"
    raise TypeError(f"no response type for {type(request).__name__}")
