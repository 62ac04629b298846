"""C-FIND candidates from SQLite: the prefilter's conditions as SQL, read in keyset pages.

This module renders a :class:`~ups.services.scp.prefilter.Prefilter` over the
``workitem_keys`` index (:mod:`ups.services.scp.sqliteschema`) and reads the candidates a
page at a time:

* the driving condition (:meth:`Prefilter.driver`) is read from the primary key
  (``key``, ``value``, ``wid``) in that order, so a page costs its own rows whatever the
  worklist's size; an :class:`Equal` is an index point, a :class:`Between` a range, a
  :class:`Pattern` a GLOB (``[`` escaped) bounded below and above by its literal prefix;
  its terms (alternatives) are read one after the other, each over its own range;
* a workitem with several entries that satisfy the driver (a multi-valued attribute,
  several sequence items) is given once: under the first term it satisfies, at its
  smallest such entry;
* every other condition is an EXISTS on the (``wid``, ``key``, ``value``) index;
* no condition at all reads ``workitems`` in creation order.

Each page is one short statement (or one per term it finishes) that ends before
:meth:`SQLiteCandidates.fetch` returns; the keyset (the term, the last ``value`` and
``wid``) is all that is kept between pages.
So a C-FIND whose reader is slow holds no read transaction open (the WAL can be
checkpointed meanwhile), and a PostgreSQL store can page the same way. A workitem
changed between two pages is seen as it is when its page is read; none is given twice.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from ups.services.scp.prefilter import Condition, Equal, Pattern, Prefilter, Term, index_range

__all__ = ["SQLiteCandidates"]


def _term(column: str, term: Term, args: list[Any], floor: Any = None) -> str:
    """``term`` on ``column``; ``floor``: a lower bound the caller adds (the keyset), merged
    with the term's own so that SQLite reads the index from the tighter one."""
    if isinstance(term, Equal):
        args.append(term.value)
        return f"{column} = ?"
    parts: list[str] = []
    if isinstance(term, Pattern):
        parts.append(f"{column} GLOB ?")
        args.append(term.glob())
    elif term.low is None and term.high is None:
        parts.append(f"typeof({column}) = 'integer'")  # any date-time entry
    low, high, exclusive = index_range(term, floor)
    if low is not None:
        parts.append(f"{column} >= ?")
        args.append(low)
    if high is not None:
        parts.append(f"{column} {'<' if exclusive else '<='} ?")
        args.append(high)
    return "(" + " AND ".join(parts) + ")"


def _any(column: str, terms: tuple[Term, ...], args: list[Any]) -> str:  # for EXISTS
    return "(" + " OR ".join(_term(column, t, args) for t in terms) + ")"


def _exists(condition: Condition, args: list[Any]) -> str:
    args.append(condition.key)
    terms = _any("c.value", condition.terms, args)
    return f"EXISTS (SELECT 1 FROM workitem_keys c WHERE c.wid = w.id AND c.key = ? AND {terms})"


class SQLiteCandidates:
    """The candidates of one C-FIND, a page per :meth:`fetch`, on the store's connection.

    The driver's terms are read one after the other, each over its own index range; a
    workitem is given under the first term (and at the smallest value) it satisfies.
    """

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock, prefilter: Prefilter):
        self._conn = conn
        self._lock = lock
        self._driver = prefilter.driver()
        self._others = prefilter.others()
        self._term = 0
        self._last: tuple[Any, int] | None = None
        self._done = False

    def _scan(self, size: int) -> tuple[str, list[Any]]:
        """No condition on an index: every workitem, in creation order."""
        args: list[Any] = []
        where = []
        if self._last is not None:
            where.append("w.id > ?")
            args.append(self._last[1])
        where += [_exists(c, args) for c in self._others]
        clause = " WHERE " + " AND ".join(where) if where else ""
        args.append(size)
        return f"SELECT NULL, w.id, w.dataset FROM workitems w{clause} ORDER BY w.id LIMIT ?", args

    def _sql(self, size: int) -> tuple[str, list[Any]]:
        driver = self._driver
        if driver is None:
            return self._scan(size)
        args: list[Any] = [driver.key]
        term = driver.terms[self._term]
        last = self._last
        if isinstance(term, Equal):
            where = ["k.key = ?", _term("k.value", term, args)]
            if last is not None:  # the value is fixed: the index reads on from the wid
                where.append("k.wid > ?")
                args.append(last[1])
        else:
            where = ["k.key = ?", _term("k.value", term, args, None if last is None else last[0])]
            if last is not None:
                where.append("(k.value, k.wid) > (?, ?)")
                args += last
        earlier_args: list[Any] = []
        earlier = [f"({_term('d.value', t, earlier_args)})" for t in driver.terms[: self._term]]
        if not isinstance(term, Equal):  # a range or pattern: several values may satisfy it
            earlier.append(f"(d.value < k.value AND {_term('d.value', term, earlier_args)})")
        if earlier:
            args += [driver.key, *earlier_args]
            where.append(
                "NOT EXISTS (SELECT 1 FROM workitem_keys d WHERE d.wid = k.wid AND d.key = ?"
                f" AND ({' OR '.join(earlier)}))"
            )
        where += [_exists(c, args) for c in self._others]
        args.append(size)
        sql = (
            "SELECT k.value, k.wid, w.dataset FROM workitem_keys k"
            " JOIN workitems w ON w.id = k.wid WHERE " + " AND ".join(where)
        )
        return sql + " ORDER BY k.value, k.wid LIMIT ?", args

    def plan(self) -> list[str]:
        """SQLite's query plan of the next page (for tests and the curious)."""
        sql, args = self._sql(64)
        with self._lock:
            rows = self._conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
        return [str(row[-1]) for row in rows]

    def fetch(self, size: int) -> list[bytes]:
        """Up to ``size`` more candidates (stored encodings); empty at the end."""
        out: list[bytes] = []
        while not self._done and len(out) < size:
            sql, args = self._sql(size - len(out))
            with self._lock:
                rows = self._conn.execute(sql, args).fetchall()
            if rows:
                self._last = (rows[-1][0], rows[-1][1])
                out += [bytes(row[2]) for row in rows]
            if len(out) < size:  # this term is exhausted: the next one, or the end
                self._term += 1
                self._last = None
                self._done = self._driver is None or self._term >= len(self._driver.terms)
        return out

    def close(self) -> None:
        """Forget the position (no statement stays open between pages)."""
        self._done = True
