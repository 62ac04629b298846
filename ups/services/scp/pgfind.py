"""C-FIND candidates on PostgreSQL: every workitem, in keyset pages by creation order.

The first slice of the PostgreSQL store does not keep the prefilter's index entries
yet, so every workitem is a candidate and :mod:`ups.services.scp.matching` decides, as
the :class:`~ups.services.scp.store.Candidates` contract allows (extra candidates are
fine, a missed match is not). Pages are read one at a time, each its own statement, so
a stalled reader holds no transaction and no cursor open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ups.services.scp.prefilter import Prefilter

__all__ = ["PgCandidates"]

Rows = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class PgCandidates:
    """:class:`~ups.services.scp.store.Candidates` over ``ups_workitems`` by ``seq``."""

    def __init__(self, rows: Rows, prefilter: Prefilter) -> None:
        self._rows = rows
        self._prefilter = prefilter  # kept for the index-backed version
        self._last = 0
        self._done = False

    def fetch(self, size: int) -> list[bytes]:
        """Up to ``size`` more candidates (stored encodings); empty at the end."""
        if self._done:
            return []
        rows = self._rows(
            "SELECT seq, dataset FROM ups_workitems WHERE seq > %s ORDER BY seq LIMIT %s",
            (self._last, size),
        )
        if len(rows) < size:
            self._done = True
        if rows:
            self._last = rows[-1][0]
        return [bytes(row[1]) for row in rows]

    def close(self) -> None:
        """Forget the position (no statement stays open between pages)."""
        self._done = True
