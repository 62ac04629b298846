"""ups.pdu.fsm against a second, independent transcription of PS3.8 Table 9-10.

The grid below is the table as printed (one row per event, one column per state,
``.`` for a blank cell); the next states come from the action definitions in
Tables 9-6..9-9. Every one of the 13 x 19 = 247 cells is its own test case.
"""

from __future__ import annotations

import pytest

from ups.pdu.fsm import INVALID, TABLE, Action, Event, State, is_valid, transition

GRID = """
        Sta1  Sta2  Sta3  Sta4  Sta5  Sta6  Sta7  Sta8  Sta9  Sta10 Sta11 Sta12 Sta13
Evt1    AE-1  .     .     .     .     .     .     .     .     .     .     .     .
Evt2    .     .     .     AE-2  .     .     .     .     .     .     .     .     .
Evt3    .     AA-1  AA-8  .     AE-3  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt4    .     AA-1  AA-8  .     AE-4  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt5    AE-5  .     .     .     .     .     .     .     .     .     .     .     .
Evt6    .     AE-6  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
Evt7    .     .     AE-7  .     .     .     .     .     .     .     .     .     .
Evt8    .     .     AE-8  .     .     .     .     .     .     .     .     .     .
Evt9    .     .     .     .     .     DT-1  .     AR-7  .     .     .     .     .
Evt10   .     AA-1  AA-8  .     AA-8  DT-2  AR-6  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt11   .     .     .     .     .     AR-1  .     .     .     .     .     .     .
Evt12   .     AA-1  AA-8  .     AA-8  AR-2  AR-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-6
Evt13   .     AA-1  AA-8  .     AA-8  AA-8  AR-3  AA-8  AA-8  AR-10 AR-3  AA-8  AA-6
Evt14   .     .     .     .     .     .     .     AR-4  AR-9  .     .     AR-4  .
Evt15   .     .     AA-1  AA-2  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  AA-1  .
Evt16   .     AA-2  AA-3  .     AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-3  AA-2
Evt17   .     AA-5  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AA-4  AR-5
Evt18   .     AA-2  .     .     .     .     .     .     .     .     .     .     AA-2
Evt19   .     AA-1  AA-8  .     AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-8  AA-7
"""

# "Next state is ..." from Tables 9-6..9-9 (first branch for AE-6 and AR-8).
NEXT = {
    "AE-1": 4, "AE-2": 5, "AE-3": 6, "AE-4": 1, "AE-5": 2, "AE-6": 3, "AE-7": 6, "AE-8": 13,
    "DT-1": 6, "DT-2": 6,
    "AR-1": 7, "AR-2": 8, "AR-3": 1, "AR-4": 13, "AR-5": 1, "AR-6": 7, "AR-7": 8,
    "AR-8": 9, "AR-9": 11, "AR-10": 12,
    "AA-1": 13, "AA-2": 1, "AA-3": 1, "AA-4": 1, "AA-5": 1, "AA-6": 13, "AA-7": 13,
    "AA-8": 13,
}  # fmt: skip


def _parse() -> dict[tuple[int, int], str | None]:
    lines = [line.split() for line in GRID.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert header == [f"Sta{i}" for i in range(1, 14)]
    assert [row[0] for row in rows] == [f"Evt{i}" for i in range(1, 20)]
    cells: dict[tuple[int, int], str | None] = {}
    for row in rows:
        assert len(row) == 14, row[0]
        evt = int(row[0][3:])
        for sta, cell in enumerate(row[1:], start=1):
            cells[(sta, evt)] = None if cell == "." else cell
    return cells


CELLS = _parse()


def test_grid_has_every_cell() -> None:
    assert len(CELLS) == 247


@pytest.mark.parametrize(
    ("sta", "evt"), sorted(CELLS), ids=[f"Sta{s}-Evt{e}" for s, e in sorted(CELLS)]
)
def test_cell(sta: int, evt: int) -> None:
    state, event = State(sta), Event(evt)
    expected = CELLS[(sta, evt)]
    if expected is None:
        assert (state, event) not in TABLE
        assert not is_valid(state, event)
        assert transition(state, event) == INVALID == (Action.AA_8, State.STA13)
    else:
        assert TABLE[(state, event)] == (Action(expected), State(NEXT[expected]))
        assert is_valid(state, event)
        assert transition(state, event) == TABLE[(state, event)]


def test_table_has_no_extra_cells() -> None:
    assert {(int(s), int(e)) for s, e in TABLE} == {k for k, v in CELLS.items() if v}


def test_action_values_are_the_standard_names() -> None:
    assert {a.value for a in Action} == set(NEXT)
    assert len(State) == 13 and len(Event) == 19


def test_conditional_next_states() -> None:
    # AR-8: requestor -> Sta9, acceptor -> Sta10 (Table 9-8).
    assert transition(State.STA7, Event.EVT12) == (Action.AR_8, State.STA9)
    assert transition(State.STA7, Event.EVT12, requestor=False) == (Action.AR_8, State.STA10)
    # AE-6: acceptable -> Sta3, rejected by the provider -> Sta13 (Table 9-6).
    assert transition(State.STA2, Event.EVT6) == (Action.AE_6, State.STA3)
    assert transition(State.STA2, Event.EVT6, acceptable=False) == (Action.AE_6, State.STA13)
    # Other cells ignore both flags.
    assert transition(State.STA6, Event.EVT10, requestor=False, acceptable=False) == (
        Action.DT_2,
        State.STA6,
    )
