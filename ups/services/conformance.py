"""What PS3.4 Annex CC asks of a UPS SCP, as data: one table for the SCP's tests and the probe.

This module owns the expectations, nothing that acts on them:

* :data:`TRANSITIONS`, the Unified Procedure Step State Transition Table (PS3.4 Table
  CC.1.1-2), one :class:`ExpectedCell` per (request, state), each with the status code CC.2
  gives it (Tables CC.2.1-2, CC.2.2-2, CC.2.5-4) as a :class:`~ups.dimse.status.Status`;
* :data:`STATUS_CASES`, every status a client can provoke, named: the 45 cells of the
  table plus the attribute rules of N-CREATE (Table CC.2.5-3/-4), N-SET (CC.2.6-1),
  N-GET (CC.2.7), the subscription actions (CC.2.3-3) and the general PS3.7 Annex C
  codes, each saying how to set it up and what it must answer;
* :data:`EVENT_SEQUENCES`, the N-EVENT-REPORTs each step causes (CC.2.4.3, Table
  CC.2.4-1), in order.

The reference SCP's tests check its answers against these rows, and ``dcmups probe``
(:mod:`ups.services.probe`) checks anyone else's, so the two cannot drift apart.

Choices the standard leaves open are written here once (PS3.4 CC.4.2.1 conformance
statement items) and match :mod:`ups.services.upsstate`: a claim of a SCHEDULED UPS is
"with correct Transaction UID" when it carries one; a second claim with another
Transaction UID is C301 (C302 only for the same one). Where another reading is
defensible the case lists its status under ``readings`` (the probe warns), and where
the standard allows several outcomes they are all under ``allowed`` (the probe passes).

Final-state cells need the workitem to still exist: a case whose UPS starts COMPLETED or
CANCELED holds a Deletion Lock (``lock``; CC.2.3.2) so that an SCP may purge finished
workitems at once without failing them. The ``retained`` cases ask the same without the
lock: Table CC.1.1-2 gives B306 precisely so that a performer may repeat its COMPLETED
after a lost response, which only works if the SCP keeps the workitem for a while.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from ups.dimse.status import Status
from ups.services.uids import EventType, ProcedureStepState, Role

__all__ = [
    "Row",
    "ExpectedCell",
    "TRANSITIONS",
    "COLUMNS",
    "column_slug",
    "RequestKind",
    "Tuid",
    "Variant",
    "StatusCase",
    "STATUS_CASES",
    "CASES_BY_NAME",
    "cell_case",
    "ExpectedEvent",
    "EVENT_SEQUENCES",
    "FINAL_STATES",
]

_S, _IP, _CO, _CA = (
    ProcedureStepState.SCHEDULED,
    ProcedureStepState.IN_PROGRESS,
    ProcedureStepState.COMPLETED,
    ProcedureStepState.CANCELED,
)
FINAL_STATES = frozenset({_CO, _CA})

# ----------------------------------------------------------------- Table CC.1.1-2


class Row(Enum):
    """The rows (requests) of Table CC.1.1-2; the value is the slug used in check names."""

    CREATE = "create"
    IN_PROGRESS = "claim"
    IN_PROGRESS_WRONG_UID = "claim-wrong-tuid"
    SCHEDULED = "reschedule"
    COMPLETED = "complete"
    COMPLETED_WRONG_UID = "complete-wrong-tuid"
    REQUEST_CANCEL = "request-cancel"
    CANCELED = "cancel"
    CANCELED_WRONG_UID = "cancel-wrong-tuid"

    @property
    def target(self) -> ProcedureStepState | None:
        """The Procedure Step State a Change UPS State of this row asks for."""
        return _ROW_TARGETS.get(self)

    @property
    def correct_tuid(self) -> bool:
        return not self.value.endswith("-wrong-tuid")


_ROW_TARGETS: Mapping[Row, ProcedureStepState] = MappingProxyType(
    {
        Row.IN_PROGRESS: _IP,
        Row.IN_PROGRESS_WRONG_UID: _IP,
        Row.SCHEDULED: _S,
        Row.COMPLETED: _CO,
        Row.COMPLETED_WRONG_UID: _CO,
        Row.CANCELED: _CA,
        Row.CANCELED_WRONG_UID: _CA,
    }
)

COLUMNS: tuple[ProcedureStepState | None, ...] = (None, _S, _IP, _CO, _CA)
"""The columns of Table CC.1.1-2: "does not exist", then the four states."""


def column_slug(state: ProcedureStepState | None) -> str:
    return "absent" if state is None else state.value.lower().replace(" ", "-")


@dataclass(frozen=True, slots=True)
class ExpectedCell:
    """One cell: the status to answer, and the state afterwards for an accepted request.

    ``new_state`` is None for a refusal or a warning (nothing changes) and for Request
    Cancel of an IN PROGRESS UPS (the performer decides). ``final_check`` marks the cells
    that apply the Final State requirements of Table CC.2.5-3 (C304 when unmet).
    ``allowed`` are other statuses the standard permits for this cell; ``readings`` are
    statuses another defensible reading gives (see the module docstring).
    """

    status: Status
    new_state: ProcedureStepState | None = None
    final_check: bool = False
    allowed: frozenset[Status] = frozenset()
    readings: frozenset[Status] = frozenset()


_OK = Status.SUCCESS
_DUP = ExpectedCell(Status.DUPLICATE_SOP_INSTANCE)
_NONE = ExpectedCell(Status.UPS_NO_SUCH_INSTANCE)
_NO_UPDATE = ExpectedCell(Status.UPS_MAY_NO_LONGER_BE_UPDATED)
_ONLY_CREATE = ExpectedCell(Status.UPS_SCHEDULED_ONLY_VIA_CREATE)
_NOT_IN_PROGRESS = ExpectedCell(Status.UPS_NOT_IN_PROGRESS)
_WRONG = ExpectedCell(Status.UPS_WRONG_TRANSACTION_UID)
_WRONG_OR_FINAL = ExpectedCell(
    Status.UPS_WRONG_TRANSACTION_UID,
    readings=frozenset({Status.UPS_MAY_NO_LONGER_BE_UPDATED}),
)
_NO_TUID = frozenset(
    {Status.MISSING_ATTRIBUTE, Status.MISSING_ATTRIBUTE_VALUE, Status.INVALID_ARGUMENT_VALUE}
)
"""What an SCP may call a Change UPS State without the Transaction UID CC.2.1.2 requires."""
# A SCHEDULED UPS has no Transaction UID yet: "without the correct one" means none at all.
_WRONG_OR_SCHEDULED = ExpectedCell(
    Status.UPS_WRONG_TRANSACTION_UID, readings=_NO_TUID | {Status.UPS_NOT_IN_PROGRESS}
)

TRANSITIONS: Mapping[tuple[Row, ProcedureStepState | None], ExpectedCell] = MappingProxyType(
    {
        (Row.CREATE, None): ExpectedCell(_OK, new_state=_S),
        (Row.CREATE, _S): _DUP,
        (Row.CREATE, _IP): _DUP,
        (Row.CREATE, _CO): _DUP,
        (Row.CREATE, _CA): _DUP,
        (Row.IN_PROGRESS, None): _NONE,
        (Row.IN_PROGRESS, _S): ExpectedCell(_OK, new_state=_IP),
        (Row.IN_PROGRESS, _IP): ExpectedCell(Status.UPS_ALREADY_IN_PROGRESS),
        (Row.IN_PROGRESS, _CO): _NO_UPDATE,
        (Row.IN_PROGRESS, _CA): _NO_UPDATE,
        (Row.IN_PROGRESS_WRONG_UID, None): _NONE,
        (Row.IN_PROGRESS_WRONG_UID, _S): ExpectedCell(
            Status.UPS_WRONG_TRANSACTION_UID, readings=_NO_TUID
        ),
        # The second claim (CC.2.1.2 note 2): C302 "already IN PROGRESS" is the other reading.
        (Row.IN_PROGRESS_WRONG_UID, _IP): ExpectedCell(
            Status.UPS_WRONG_TRANSACTION_UID,
            readings=frozenset({Status.UPS_ALREADY_IN_PROGRESS}),
        ),
        (Row.IN_PROGRESS_WRONG_UID, _CO): _WRONG_OR_FINAL,
        (Row.IN_PROGRESS_WRONG_UID, _CA): _WRONG_OR_FINAL,
        (Row.SCHEDULED, None): _NONE,
        (Row.SCHEDULED, _S): _ONLY_CREATE,
        (Row.SCHEDULED, _IP): _ONLY_CREATE,
        (Row.SCHEDULED, _CO): _ONLY_CREATE,
        (Row.SCHEDULED, _CA): _ONLY_CREATE,
        (Row.COMPLETED, None): _NONE,
        (Row.COMPLETED, _S): _NOT_IN_PROGRESS,
        (Row.COMPLETED, _IP): ExpectedCell(_OK, new_state=_CO, final_check=True),
        (Row.COMPLETED, _CO): ExpectedCell(Status.UPS_ALREADY_COMPLETED),
        (Row.COMPLETED, _CA): _NO_UPDATE,
        (Row.COMPLETED_WRONG_UID, None): _NONE,
        (Row.COMPLETED_WRONG_UID, _S): _WRONG_OR_SCHEDULED,
        (Row.COMPLETED_WRONG_UID, _IP): _WRONG,
        (Row.COMPLETED_WRONG_UID, _CO): _WRONG_OR_FINAL,
        (Row.COMPLETED_WRONG_UID, _CA): _WRONG_OR_FINAL,
        (Row.REQUEST_CANCEL, None): _NONE,
        (Row.REQUEST_CANCEL, _S): ExpectedCell(_OK, new_state=_CA, final_check=True),
        # The performer is told (UPS Cancel Requested) and decides; CC.2.2.3 lets the SCP
        # refuse when the performer cannot be reached (C312) or declines (C313).
        (Row.REQUEST_CANCEL, _IP): ExpectedCell(
            _OK,
            allowed=frozenset({Status.UPS_PERFORMER_UNREACHABLE, Status.UPS_PERFORMER_DECLINES}),
        ),
        (Row.REQUEST_CANCEL, _CO): ExpectedCell(Status.UPS_CANCEL_ALREADY_COMPLETED),
        (Row.REQUEST_CANCEL, _CA): ExpectedCell(Status.UPS_ALREADY_CANCELED),
        (Row.CANCELED, None): _NONE,
        (Row.CANCELED, _S): _NOT_IN_PROGRESS,
        (Row.CANCELED, _IP): ExpectedCell(_OK, new_state=_CA, final_check=True),
        (Row.CANCELED, _CO): _NO_UPDATE,
        (Row.CANCELED, _CA): ExpectedCell(Status.UPS_ALREADY_CANCELED),
        (Row.CANCELED_WRONG_UID, None): _NONE,
        (Row.CANCELED_WRONG_UID, _S): _WRONG_OR_SCHEDULED,
        (Row.CANCELED_WRONG_UID, _IP): _WRONG,
        (Row.CANCELED_WRONG_UID, _CO): _WRONG_OR_FINAL,
        (Row.CANCELED_WRONG_UID, _CA): _WRONG_OR_FINAL,
    }
)

# ----------------------------------------------------------------- status cases


class RequestKind(Enum):
    """What a case sends (PS3.4 CC.2; N-ACTION with its Action Type ID, CC.2.1-CC.2.3)."""

    CREATE = "N-CREATE"
    SET = "N-SET"
    GET = "N-GET"
    CHANGE_STATE = "N-ACTION 1"
    REQUEST_CANCEL = "N-ACTION 2"
    SUBSCRIBE = "N-ACTION 3"
    UNSUBSCRIBE = "N-ACTION 4"
    SUSPEND = "N-ACTION 5"
    UNKNOWN_ACTION = "N-ACTION 99"
    FIND = "C-FIND"


class Tuid(Enum):
    """The Transaction UID a request carries.

    CORRECT: the one the UPS was claimed with (any new one for a SCHEDULED UPS);
    OTHER: a different one (none at all for a SCHEDULED UPS, which has none yet);
    NONE: no Transaction UID.
    """

    CORRECT = "correct"
    OTHER = "other"
    NONE = "none"


class Variant(Enum):
    """How a case's request departs from the plain one of its action."""

    PLAIN = "plain"
    NO_FINAL_ATTRIBUTES = "the Final State attributes not set"
    NOT_SCHEDULED = "Procedure Step State IN PROGRESS"
    MISSING_TYPE1 = "Scheduled Procedure Step Priority missing"
    EMPTY_TYPE1 = "Input Readiness State empty"
    BAD_ENUM = "Scheduled Procedure Step Priority URGENT"
    WITH_TUID = "a Transaction UID given"
    GLOBAL_UID = "the UPS Global Subscription instance UID"
    SET_STATE_SCHEDULED = "Procedure Step State SCHEDULED"
    SET_SOP_INSTANCE_UID = "SOP Instance UID changed"
    BAD_STATE = "Procedure Step State DONE"
    UNKNOWN_AE = "Receiving AE unknown to the SCP"
    NO_RECEIVING_AE = "Receiving AE missing"
    BAD_DELETION_LOCK = "Deletion Lock MAYBE"
    BAD_RANGE = "a malformed date-time range"


@dataclass(frozen=True, slots=True)
class StatusCase:
    """One status a client can provoke: how to set it up, what to send, what must come back.

    ``start`` is the state the UPS is put in first (None: the UPS does not exist);
    ``lock`` holds a Deletion Lock on it while the case runs; ``role`` is the UPS SOP
    Class whose presentation context carries the request (None: the usual one for the
    action, see :data:`ups.services.probe` ``DEFAULT_ROLES``). ``then`` is the state an
    N-GET must show afterwards (None: not looked at). ``lenient`` marks requests the
    standard says a client must not send (a wrong context): refusing them is expected,
    accepting them is only worth a warning. ``hostile`` cases may upset a production
    SCP and run only when asked for (``dcmups probe --hostile``).
    """

    name: str
    reference: str
    action: RequestKind
    expected: Status
    start: ProcedureStepState | None = None
    target: ProcedureStepState | None = None
    tuid: Tuid = Tuid.CORRECT
    variant: Variant = Variant.PLAIN
    lock: bool = True
    role: Role | None = None
    then: ProcedureStepState | None = None
    allowed: frozenset[Status] = frozenset()
    readings: frozenset[Status] = frozenset()
    lenient: bool = False
    hostile: bool = False
    retained: bool = False
    """Asks the SCP to keep a finished workitem without a Deletion Lock (see above)."""

    @property
    def sends(self) -> str:
        """What is sent, in words, for reports."""
        parts = [self.action.value]
        if self.target is not None:
            parts.append(f"-> {self.target.value}")
        if (
            self.action in (RequestKind.CHANGE_STATE, RequestKind.SET)
            and self.tuid is not Tuid.CORRECT
        ):
            none = self.tuid is Tuid.NONE or self.start in (None, _S)  # none to get wrong
            parts.append("(no Transaction UID)" if none else "(another Transaction UID)")
        if self.variant is not Variant.PLAIN:
            parts.append(f"({self.variant.value})")
        if self.role is not None:
            parts.append(f"on UPS {self.role.value.capitalize()}")
        article = "an" if self.start == _IP else "a"
        where = "a UPS that does not exist" if self.start is None else f"{article} {self.start} UPS"
        return f"{' '.join(parts)} to {where}"


_CELL_ACTIONS: Mapping[Row, RequestKind] = MappingProxyType(
    {Row.CREATE: RequestKind.CREATE, Row.REQUEST_CANCEL: RequestKind.REQUEST_CANCEL}
)
_CELL_REFERENCES: Mapping[Row, str] = MappingProxyType(
    {
        Row.CREATE: "PS3.4 Table CC.1.1-2, CC.2.5-4",
        Row.REQUEST_CANCEL: "PS3.4 Table CC.1.1-2, CC.2.2-2",
    }
)


def _cell_case(row: Row, column: ProcedureStepState | None) -> StatusCase:
    cell = TRANSITIONS[(row, column)]
    action = _CELL_ACTIONS.get(row, RequestKind.CHANGE_STATE)
    if row is Row.CREATE:
        tuid = Tuid.CORRECT
    else:
        tuid = Tuid.CORRECT if row.correct_tuid else Tuid.OTHER
    then = cell.new_state
    return StatusCase(
        name=f"{row.value}@{column_slug(column)}",
        reference=_CELL_REFERENCES.get(row, "PS3.4 Table CC.1.1-2, CC.2.1-2"),
        action=action,
        expected=cell.status,
        start=column,
        target=row.target,
        tuid=tuid,
        then=then,
        allowed=cell.allowed,
        readings=cell.readings,
    )


_CELL_CASES = tuple(_cell_case(row, column) for row in Row for column in COLUMNS)


def cell_case(row: Row, column: ProcedureStepState | None) -> StatusCase:
    """The case that provokes one cell of Table CC.1.1-2."""
    return CASES_BY_NAME[f"{row.value}@{column_slug(column)}"]


_A = RequestKind
_V = Variant
_C25 = "PS3.4 CC.2.5.3, Table CC.2.5-4"
_C26 = "PS3.4 CC.2.6.3, Table CC.2.6-1"
_C23 = "PS3.4 CC.2.3.3, Table CC.2.3-3"

# fmt: off
_RULE_CASES: tuple[StatusCase, ...] = (
    # N-CREATE (Table CC.2.5-3 attribute rules, CC.2.5-4 statuses)
    StatusCase("create-not-scheduled", _C25, _A.CREATE, Status.UPS_CREATE_NOT_SCHEDULED,
               variant=_V.NOT_SCHEDULED),
    StatusCase("create-missing-type1", _C25, _A.CREATE, Status.MISSING_ATTRIBUTE,
               variant=_V.MISSING_TYPE1),
    StatusCase("create-empty-type1", _C25, _A.CREATE, Status.MISSING_ATTRIBUTE_VALUE,
               variant=_V.EMPTY_TYPE1),
    StatusCase("create-bad-enum", _C25, _A.CREATE, Status.INVALID_ATTRIBUTE_VALUE,
               variant=_V.BAD_ENUM),
    StatusCase("create-with-transaction-uid", "PS3.4 Table CC.2.5-3 (shall be empty)",
               _A.CREATE, Status.UPS_CREATED_WITH_MODIFICATIONS, variant=_V.WITH_TUID,
               then=_S, readings=frozenset({Status.INVALID_ATTRIBUTE_VALUE})),
    StatusCase("create-global-uid", "PS3.4 CC.3.1 (well-known instance), Table CC.1.1-2",
               _A.CREATE, Status.DUPLICATE_SOP_INSTANCE, variant=_V.GLOBAL_UID,
               readings=frozenset({Status.INVALID_SOP_INSTANCE}), hostile=True),
    # N-SET (Table CC.2.6-1)
    StatusCase("set-scheduled", _C26, _A.SET, _OK, start=_S, tuid=Tuid.NONE, then=_S),
    StatusCase("set-in-progress", _C26, _A.SET, _OK, start=_IP, then=_IP),
    StatusCase("set-unknown", _C26, _A.SET, Status.UPS_NO_SUCH_INSTANCE, tuid=Tuid.NONE),
    StatusCase("set-completed", _C26, _A.SET, Status.UPS_MAY_NO_LONGER_BE_UPDATED, start=_CO),
    StatusCase("set-canceled", _C26, _A.SET, Status.UPS_MAY_NO_LONGER_BE_UPDATED, start=_CA),
    StatusCase("set-in-progress-without-tuid", _C26, _A.SET, Status.UPS_WRONG_TRANSACTION_UID,
               start=_IP, tuid=Tuid.NONE),
    StatusCase("set-in-progress-wrong-tuid", _C26, _A.SET, Status.UPS_WRONG_TRANSACTION_UID,
               start=_IP, tuid=Tuid.OTHER),
    StatusCase("set-scheduled-with-tuid", "PS3.4 CC.2.6.2, Table CC.2.6-1", _A.SET,
               Status.UPS_NOT_IN_PROGRESS, start=_S, tuid=Tuid.CORRECT,
               readings=frozenset({Status.UPS_WRONG_TRANSACTION_UID})),
    StatusCase("set-state-scheduled", _C26, _A.SET, Status.UPS_SCHEDULED_ONLY_VIA_CREATE,
               start=_S, tuid=Tuid.NONE, variant=_V.SET_STATE_SCHEDULED,
               readings=frozenset({Status.INVALID_ATTRIBUTE_VALUE})),
    StatusCase("set-sop-instance-uid", "PS3.4 Table CC.2.5-3 (N-SET Not Allowed)", _A.SET,
               Status.INVALID_ATTRIBUTE_VALUE, start=_S, tuid=Tuid.NONE,
               variant=_V.SET_SOP_INSTANCE_UID, readings=frozenset({Status.NO_SUCH_ATTRIBUTE})),
    # N-GET (CC.2.7)
    StatusCase("get-unknown", "PS3.4 CC.2.7.4", _A.GET, Status.UPS_NO_SUCH_INSTANCE,
               readings=frozenset({Status.NO_SUCH_SOP_INSTANCE})),
    # Change UPS State: the Final State requirements, and a value that is no state
    StatusCase("complete-without-final-state", "PS3.4 Table CC.2.5-3 (Final), CC.2.1-2",
               _A.CHANGE_STATE, Status.UPS_FINAL_STATE_NOT_MET, start=_IP, target=_CO,
               variant=_V.NO_FINAL_ATTRIBUTES, then=_IP),
    StatusCase("cancel-without-final-state", "PS3.4 Table CC.2.5-3 (Final), CC.2.1-2",
               _A.CHANGE_STATE, Status.UPS_FINAL_STATE_NOT_MET, start=_IP, target=_CA,
               variant=_V.NO_FINAL_ATTRIBUTES, then=_IP),
    StatusCase("change-to-bad-state", "PS3.4 CC.2.1.2, PS3.7 C.4.2", _A.CHANGE_STATE,
               Status.INVALID_ARGUMENT_VALUE, start=_IP, variant=_V.BAD_STATE,
               readings=frozenset({Status.INVALID_ATTRIBUTE_VALUE})),
    # Request UPS Cancel when nobody is subscribed to hear it (CC.2.2.3)
    StatusCase("request-cancel-unreachable", "PS3.4 CC.2.2.3, Table CC.2.2-2",
               _A.REQUEST_CANCEL, Status.UPS_PERFORMER_UNREACHABLE, start=_IP, lock=False,
               allowed=frozenset({_OK, Status.UPS_PERFORMER_DECLINES})),
    # Subscriptions (Table CC.2.3-3)
    StatusCase("subscribe-unknown-ups", _C23, _A.SUBSCRIBE, Status.UPS_NO_SUCH_INSTANCE),
    StatusCase("subscribe-unknown-ae", _C23, _A.SUBSCRIBE, Status.UPS_UNKNOWN_RECEIVING_AE,
               start=_S, variant=_V.UNKNOWN_AE, readings=frozenset({_OK})),
    StatusCase("unsubscribe-unknown-ups", _C23, _A.UNSUBSCRIBE, Status.UPS_NO_SUCH_INSTANCE,
               readings=frozenset({_OK})),
    StatusCase("suspend-specific-ups", _C23, _A.SUSPEND, Status.UPS_ACTION_NOT_APPROPRIATE,
               start=_S),
    StatusCase("subscribe-without-receiving-ae", _C23, _A.SUBSCRIBE,
               Status.INVALID_ARGUMENT_VALUE, start=_S, variant=_V.NO_RECEIVING_AE,
               readings=frozenset({Status.MISSING_ATTRIBUTE, Status.NO_SUCH_ARGUMENT})),
    StatusCase("subscribe-bad-deletion-lock", _C23, _A.SUBSCRIBE,
               Status.INVALID_ARGUMENT_VALUE, start=_S, variant=_V.BAD_DELETION_LOCK,
               readings=frozenset({Status.INVALID_ATTRIBUTE_VALUE})),
    # General statuses (PS3.7 Annex C) and wrong contexts (PS3.4 CC.3.1.1): lenient
    StatusCase("unknown-action-type", "PS3.7 C.4.2 (0123), PS3.4 CC.2", _A.UNKNOWN_ACTION,
               Status.NO_SUCH_ACTION, start=_S, role=Role.WATCH,
               readings=frozenset({Status.UNRECOGNIZED_OPERATION}), hostile=True),
    StatusCase("change-state-on-watch", "PS3.4 CC.3.1.1, PS3.7 C.4.2", _A.CHANGE_STATE,
               Status.NO_SUCH_ACTION, start=_S, target=_IP, role=Role.WATCH, lenient=True),
    StatusCase("create-on-pull", "PS3.4 CC.3.1.1, PS3.7 C.5.4", _A.CREATE,
               Status.UNRECOGNIZED_OPERATION, role=Role.PULL, lenient=True),
    StatusCase("subscribe-on-pull", "PS3.4 CC.3.1.1, PS3.7 C.4.2", _A.SUBSCRIBE,
               Status.NO_SUCH_ACTION, start=_S, role=Role.PULL, lenient=True),
    StatusCase("find-on-push", "PS3.4 CC.3.1.1, PS3.7 C.5.4", _A.FIND,
               Status.UNRECOGNIZED_OPERATION, role=Role.PUSH, lenient=True),
    StatusCase("find-bad-range", "PS3.4 C.2.2.2.5, C.4.1.1.4", _A.FIND,
               Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, start=_S, variant=_V.BAD_RANGE,
               lenient=True),
    # A finished workitem kept without a Deletion Lock (Table CC.1.1-2 B306 is for retries)
    StatusCase("retained.complete-again", "PS3.4 Table CC.1.1-2, CC.2.1-2", _A.CHANGE_STATE,
               Status.UPS_ALREADY_COMPLETED, start=_CO, target=_CO, lock=False, retained=True),
    StatusCase("retained.set-after-complete", _C26, _A.SET,
               Status.UPS_MAY_NO_LONGER_BE_UPDATED, start=_CO, lock=False, retained=True),
    StatusCase("retained.get-after-complete", "PS3.4 CC.2.7.3", _A.GET, _OK, start=_CO,
               lock=False, then=_CO, retained=True),
)
# fmt: on

STATUS_CASES: tuple[StatusCase, ...] = _CELL_CASES + _RULE_CASES
"""Every case: the 45 cells of Table CC.1.1-2 first, then the attribute and general rules."""

CASES_BY_NAME: Mapping[str, StatusCase] = MappingProxyType({c.name: c for c in STATUS_CASES})

# ----------------------------------------------------------------- event sequences


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    """One N-EVENT-REPORT a step must (or, when ``optional``, may) cause (Table CC.2.4-1).

    ``state`` is the Procedure Step State a UPS State Report must carry; ``attributes``
    are Event Information keywords that must be present (``A>B``: B in an item of A).
    """

    event_type: EventType
    state: ProcedureStepState | None = None
    attributes: tuple[str, ...] = ()
    optional: bool = False


_STATE_KEYS = ("ProcedureStepState", "InputReadinessState")


def _report(state: ProcedureStepState, *, optional: bool = False) -> ExpectedEvent:
    return ExpectedEvent(EventType.UPS_STATE_REPORT, state, _STATE_KEYS, optional)


EVENT_SEQUENCES: Mapping[str, tuple[ExpectedEvent, ...]] = MappingProxyType(
    {
        # CC.2.3.2/CC.2.4.3: a subscription to one UPS is answered with its state.
        "subscribe": (_report(_S),),
        # CC.2.4.3: every state change is reported to the UPS's subscribers, in order.
        "claim": (_report(_IP),),
        "complete": (_report(_CO),),
        "cancel": (_report(_CA),),
        # Request UPS Cancel of an IN PROGRESS UPS: the performer is told, with what the
        # requester gave (Table CC.2.4-1, Event Type 2); the state does not change.
        "request-cancel-in-progress": (
            ExpectedEvent(
                EventType.UPS_CANCEL_REQUESTED,
                attributes=(
                    "RequestingAE",
                    "ReasonForCancellation",
                    "ContactDisplayName",
                    "ContactURI",
                    "ProcedureStepDiscontinuationReasonCodeSequence",
                ),
            ),
        ),
        # A SCHEDULED UPS is canceled by the SCP itself; it may report the request and
        # the IN PROGRESS step it went through on the way (Table CC.1.1-2).
        "request-cancel-scheduled": (
            ExpectedEvent(EventType.UPS_CANCEL_REQUESTED, optional=True),
            _report(_IP, optional=True),
            _report(_CA),
        ),
        # CC.2.4.3: a change of Procedure Step Progress is a UPS Progress Report.
        "progress": (
            ExpectedEvent(
                EventType.UPS_PROGRESS_REPORT,
                attributes=("ProcedureStepProgressInformationSequence>ProcedureStepProgress",),
            ),
        ),
        # CC.2.4.3: a UPS created while a Global Subscription is active is reported to
        # its subscriber.
        "create-global": (_report(_S),),
    }
)
