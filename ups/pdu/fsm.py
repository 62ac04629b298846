"""The DICOM Upper Layer state machine as data (PS3.8 §9.2).

States are Tables 9-1..9-5, events Table 9-10's rows, actions Tables 9-6..9-9, and
``TABLE`` is Table 9-10 itself: one entry per non-blank cell, holding the action and
the next state that the action's definition names. The standard leaves the other
cells blank; this package treats a blank cell as the protocol error it is and answers
it with AA-8 (send an A-ABORT, report an A-P-ABORT, wait in Sta13). That default is
stated once, in :func:`transition`.

Two actions have a next state that depends on something other than the cell:
AE-6 goes to Sta13 instead of Sta3 when the service provider itself rejects the
A-ASSOCIATE-RQ, and AR-8 goes to Sta10 instead of Sta9 on the association-acceptor.
``TABLE`` holds the first-named branch; :func:`transition` picks the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, IntEnum
from types import MappingProxyType


class State(IntEnum):
    """Machine states (PS3.8 Tables 9-1..9-5)."""

    STA1 = 1  # Idle
    STA2 = 2  # Transport connection open (awaiting A-ASSOCIATE-RQ PDU)
    STA3 = 3  # Awaiting local A-ASSOCIATE response primitive
    STA4 = 4  # Awaiting transport connection opening to complete
    STA5 = 5  # Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
    STA6 = 6  # Association established, ready for data transfer
    STA7 = 7  # Awaiting A-RELEASE-RP PDU
    STA8 = 8  # Awaiting local A-RELEASE response primitive
    STA9 = 9  # Release collision requestor side; awaiting A-RELEASE response
    STA10 = 10  # Release collision acceptor side; awaiting A-RELEASE-RP PDU
    STA11 = 11  # Release collision requestor side; awaiting A-RELEASE-RP PDU
    STA12 = 12  # Release collision acceptor side; awaiting A-RELEASE response
    STA13 = 13  # Awaiting transport connection close (association no longer exists)


class Event(IntEnum):
    """Machine events, the rows of PS3.8 Table 9-10."""

    EVT1 = 1  # A-ASSOCIATE request (local user)
    EVT2 = 2  # Transport connect confirmation (local transport service)
    EVT3 = 3  # A-ASSOCIATE-AC PDU received
    EVT4 = 4  # A-ASSOCIATE-RJ PDU received
    EVT5 = 5  # Transport connection indication (local transport service)
    EVT6 = 6  # A-ASSOCIATE-RQ PDU received
    EVT7 = 7  # A-ASSOCIATE response primitive (accept)
    EVT8 = 8  # A-ASSOCIATE response primitive (reject)
    EVT9 = 9  # P-DATA request primitive
    EVT10 = 10  # P-DATA-TF PDU received
    EVT11 = 11  # A-RELEASE request primitive
    EVT12 = 12  # A-RELEASE-RQ PDU received
    EVT13 = 13  # A-RELEASE-RP PDU received
    EVT14 = 14  # A-RELEASE response primitive
    EVT15 = 15  # A-ABORT request primitive
    EVT16 = 16  # A-ABORT PDU received
    EVT17 = 17  # Transport connection closed indication
    EVT18 = 18  # ARTIM timer expired
    EVT19 = 19  # Unrecognized or invalid PDU received


class Action(Enum):
    """Actions of PS3.8 Tables 9-6 (AE), 9-7 (DT), 9-8 (AR) and 9-9 (AA)."""

    AE_1 = "AE-1"  # Issue TRANSPORT CONNECT request
    AE_2 = "AE-2"  # Send A-ASSOCIATE-RQ PDU
    AE_3 = "AE-3"  # Issue A-ASSOCIATE confirmation (accept)
    AE_4 = "AE-4"  # Issue A-ASSOCIATE confirmation (reject), close transport
    AE_5 = "AE-5"  # Issue transport connection response, start ARTIM
    AE_6 = "AE-6"  # Stop ARTIM; indication, or provider reject + start ARTIM
    AE_7 = "AE-7"  # Send A-ASSOCIATE-AC PDU
    AE_8 = "AE-8"  # Send A-ASSOCIATE-RJ PDU, start ARTIM
    DT_1 = "DT-1"  # Send P-DATA-TF PDU
    DT_2 = "DT-2"  # Issue P-DATA indication
    AR_1 = "AR-1"  # Send A-RELEASE-RQ PDU
    AR_2 = "AR-2"  # Issue A-RELEASE indication
    AR_3 = "AR-3"  # Issue A-RELEASE confirmation, close transport
    AR_4 = "AR-4"  # Send A-RELEASE-RP PDU, start ARTIM
    AR_5 = "AR-5"  # Stop ARTIM
    AR_6 = "AR-6"  # Issue P-DATA indication (awaiting A-RELEASE-RP)
    AR_7 = "AR-7"  # Send P-DATA-TF PDU (awaiting local A-RELEASE response)
    AR_8 = "AR-8"  # Issue A-RELEASE indication (release collision)
    AR_9 = "AR-9"  # Send A-RELEASE-RP PDU (collision, requestor)
    AR_10 = "AR-10"  # Issue A-RELEASE confirmation (collision, acceptor)
    AA_1 = "AA-1"  # Send A-ABORT (service-user source), (re)start ARTIM
    AA_2 = "AA-2"  # Stop ARTIM if running, close transport
    AA_3 = "AA-3"  # Issue A-ABORT / A-P-ABORT indication, close transport
    AA_4 = "AA-4"  # Issue A-P-ABORT indication
    AA_5 = "AA-5"  # Stop ARTIM
    AA_6 = "AA-6"  # Ignore PDU
    AA_7 = "AA-7"  # Send A-ABORT PDU
    AA_8 = "AA-8"  # Send A-ABORT (service-provider source), A-P-ABORT indication, ARTIM


_S = State
_E = Event
_A = Action

TABLE: Mapping[tuple[State, Event], tuple[Action, State]] = MappingProxyType(
    {
        # Evt1: A-ASSOCIATE request (local user)
        (_S.STA1, _E.EVT1): (_A.AE_1, _S.STA4),
        # Evt2: transport connect confirmation
        (_S.STA4, _E.EVT2): (_A.AE_2, _S.STA5),
        # Evt3: A-ASSOCIATE-AC PDU
        (_S.STA2, _E.EVT3): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT3): (_A.AE_3, _S.STA6),
        (_S.STA6, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA7, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA8, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT3): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT3): (_A.AA_6, _S.STA13),
        # Evt4: A-ASSOCIATE-RJ PDU
        (_S.STA2, _E.EVT4): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT4): (_A.AE_4, _S.STA1),
        (_S.STA6, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA7, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA8, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT4): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT4): (_A.AA_6, _S.STA13),
        # Evt5: transport connection indication
        (_S.STA1, _E.EVT5): (_A.AE_5, _S.STA2),
        # Evt6: A-ASSOCIATE-RQ PDU
        (_S.STA2, _E.EVT6): (_A.AE_6, _S.STA3),
        (_S.STA3, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA6, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA7, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA8, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT6): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT6): (_A.AA_7, _S.STA13),
        # Evt7 / Evt8: A-ASSOCIATE response primitive (accept / reject)
        (_S.STA3, _E.EVT7): (_A.AE_7, _S.STA6),
        (_S.STA3, _E.EVT8): (_A.AE_8, _S.STA13),
        # Evt9: P-DATA request primitive
        (_S.STA6, _E.EVT9): (_A.DT_1, _S.STA6),
        (_S.STA8, _E.EVT9): (_A.AR_7, _S.STA8),
        # Evt10: P-DATA-TF PDU
        (_S.STA2, _E.EVT10): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA6, _E.EVT10): (_A.DT_2, _S.STA6),
        (_S.STA7, _E.EVT10): (_A.AR_6, _S.STA7),
        (_S.STA8, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT10): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT10): (_A.AA_6, _S.STA13),
        # Evt11: A-RELEASE request primitive
        (_S.STA6, _E.EVT11): (_A.AR_1, _S.STA7),
        # Evt12: A-RELEASE-RQ PDU
        (_S.STA2, _E.EVT12): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA6, _E.EVT12): (_A.AR_2, _S.STA8),
        (_S.STA7, _E.EVT12): (_A.AR_8, _S.STA9),
        (_S.STA8, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT12): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT12): (_A.AA_6, _S.STA13),
        # Evt13: A-RELEASE-RP PDU
        (_S.STA2, _E.EVT13): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA6, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA7, _E.EVT13): (_A.AR_3, _S.STA1),
        (_S.STA8, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT13): (_A.AR_10, _S.STA12),
        (_S.STA11, _E.EVT13): (_A.AR_3, _S.STA1),
        (_S.STA12, _E.EVT13): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT13): (_A.AA_6, _S.STA13),
        # Evt14: A-RELEASE response primitive
        (_S.STA8, _E.EVT14): (_A.AR_4, _S.STA13),
        (_S.STA9, _E.EVT14): (_A.AR_9, _S.STA11),
        (_S.STA12, _E.EVT14): (_A.AR_4, _S.STA13),
        # Evt15: A-ABORT request primitive (blank in Sta1, Sta2 and Sta13)
        (_S.STA3, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA4, _E.EVT15): (_A.AA_2, _S.STA1),
        (_S.STA5, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA6, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA7, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA8, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA9, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA10, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA11, _E.EVT15): (_A.AA_1, _S.STA13),
        (_S.STA12, _E.EVT15): (_A.AA_1, _S.STA13),
        # Evt16: A-ABORT PDU
        (_S.STA2, _E.EVT16): (_A.AA_2, _S.STA1),
        (_S.STA3, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA5, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA6, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA7, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA8, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA9, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA10, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA11, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA12, _E.EVT16): (_A.AA_3, _S.STA1),
        (_S.STA13, _E.EVT16): (_A.AA_2, _S.STA1),
        # Evt17: transport connection closed indication
        (_S.STA2, _E.EVT17): (_A.AA_5, _S.STA1),
        (_S.STA3, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA4, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA5, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA6, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA7, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA8, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA9, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA10, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA11, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA12, _E.EVT17): (_A.AA_4, _S.STA1),
        (_S.STA13, _E.EVT17): (_A.AR_5, _S.STA1),
        # Evt18: ARTIM timer expired
        (_S.STA2, _E.EVT18): (_A.AA_2, _S.STA1),
        (_S.STA13, _E.EVT18): (_A.AA_2, _S.STA1),
        # Evt19: unrecognized or invalid PDU
        (_S.STA2, _E.EVT19): (_A.AA_1, _S.STA13),
        (_S.STA3, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA5, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA6, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA7, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA8, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA9, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA10, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA11, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA12, _E.EVT19): (_A.AA_8, _S.STA13),
        (_S.STA13, _E.EVT19): (_A.AA_7, _S.STA13),
    }
)
"""PS3.8 Table 9-10: ``(state, event) -> (action, next state)`` for every non-blank cell."""

INVALID: tuple[Action, State] = (Action.AA_8, State.STA13)
"""What a blank cell of Table 9-10 does: the protocol error answer, AA-8."""


def is_valid(state: State, event: Event) -> bool:
    """Whether Table 9-10 has an entry for this cell (a local primitive is allowed)."""
    return (state, event) in TABLE


def transition(
    state: State, event: Event, *, requestor: bool = True, acceptable: bool = True
) -> tuple[Action, State]:
    """The action and next state for ``event`` in ``state``.

    A blank cell gives :data:`INVALID` (AA-8). ``requestor`` picks AR-8's branch
    (Sta9 on the association-requestor, Sta10 on the acceptor) and ``acceptable``
    AE-6's (Sta3 if the service provider accepts the A-ASSOCIATE-RQ, else Sta13),
    as Tables 9-6 and 9-8 define them.
    """
    action, next_state = TABLE.get((state, event), INVALID)
    if action is Action.AR_8 and not requestor:
        return action, State.STA10
    if action is Action.AE_6 and not acceptable:
        return action, State.STA13
    return action, next_state
