"""C-FIND candidates on PostgreSQL: the prefilter's conditions as SQL, read in keyset pages.

The same design as :mod:`ups.services.scp.sqlitefind`, over ``ups_workitem_keys``
(:mod:`ups.services.scp.pgschema`, schema version 2), whose value is ``ivalue`` (a DT
as microseconds UTC) or ``tvalue`` (text, ``COLLATE "C"``: byte order):

* the driving condition (:meth:`Prefilter.driver`) is read from the index (``key``,
  value, ``seq``) in that order, so a page costs its own rows whatever the worklist's
  size: an :class:`Equal` is ``=``, a :class:`Between` a range on ``ivalue``, a
  :class:`Pattern` a ``LIKE ... ESCAPE '\\'`` (:meth:`Pattern.like`) bounded below and
  above by its literal prefix (the parameters are bound, so the planner cannot derive
  that range from the pattern itself); its terms (alternatives) are read one after the
  other, each over its own range;
* a workitem with several entries that satisfy the driver is given once: under the
  first term it satisfies, at its smallest such entry;
* every other condition is an EXISTS on the (``seq``, ``key``) index, checked per
  candidate: each subquery carries ``OFFSET 0`` (:data:`PER_CANDIDATE`), which keeps
  PostgreSQL from pulling it up into a join it may then drive from. Without it the
  worklist query of bench scenario 14 (one patient's SCHEDULED workitems, 1,500
  stored) read all 1,000 SCHEDULED entries first: 6,098 buffers and 2.4 ms a page
  against 25 and 0.03 ms. No statistics (a new table) tie the two orders, and the
  generic plan the server caches for a prepared statement ties them even after
  ANALYZE, since the values are bound. The price: the driver leads even where
  statistics know a later condition is rarer (a workitem code and one label: 232
  buffers a page instead of 9);
* no condition at all reads ``ups_workitems`` by ``seq`` (creation order).

Each page is its own statement (autocommit), and only the keyset (the term, the last
value and ``seq``) is kept between pages, so a stalled reader holds no transaction and
no cursor open. :mod:`ups.services.scp.matching` stays the final check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ups.services.scp.prefilter import (
    Between,
    Condition,
    Equal,
    Pattern,
    Prefilter,
    Term,
    index_range,
)

__all__ = ["PgCandidates"]

Rows = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

PER_CANDIDATE = " OFFSET 0"
"""Ends each EXISTS and NOT EXISTS subquery: PostgreSQL does not turn a subquery with an
OFFSET into a semi- or anti-join (``simplify_EXISTS_query``), so it stays a check on each
candidate the driver's index gives, the order this module is built on."""


def _column(alias: str, term: Term) -> str:
    """Where ``term``'s values live: DT entries (integers) in ``ivalue``, text in ``tvalue``."""
    integer = isinstance(term, Between) or isinstance(term, Equal) and isinstance(term.value, int)
    return f"{alias}.{'ivalue' if integer else 'tvalue'}"


def _impossible(term: Term) -> bool:
    """A text term with a NUL: PostgreSQL text holds none, so no entry satisfies it (and
    the server would refuse the parameter); on SQLite it matches nothing either."""
    if isinstance(term, Pattern):
        return "\0" in term.pattern
    return isinstance(term, Equal) and isinstance(term.value, str) and "\0" in term.value


def _term(alias: str, term: Term, args: list[Any], floor: Any = None) -> str:
    """``term`` on the entry ``alias``; ``floor``: the keyset's lower bound, merged with the
    term's own so that the index is read from the tighter one."""
    column = _column(alias, term)
    if _impossible(term):
        return "FALSE"
    if isinstance(term, Equal):
        args.append(term.value)
        return f"{column} = %s"
    parts: list[str] = []
    if isinstance(term, Pattern):
        parts.append(f"{column} LIKE %s ESCAPE '\\'")
        args.append(term.like())
    elif term.low is None and term.high is None:
        parts.append(f"{column} IS NOT NULL")  # any date-time entry
    low, high, exclusive = index_range(term, floor)
    if low is not None:
        parts.append(f"{column} >= %s")
        args.append(low)
    if high is not None:
        parts.append(f"{column} {'<' if exclusive else '<='} %s")
        args.append(high)
    return "(" + " AND ".join(parts) + ")"


def _exists(condition: Condition, args: list[Any]) -> str:
    args.append(condition.key)
    terms = " OR ".join(_term("c", t, args) for t in condition.terms)
    return (
        "EXISTS (SELECT 1 FROM ups_workitem_keys c WHERE c.seq = w.seq AND c.key = %s"
        f" AND ({terms}){PER_CANDIDATE})"
    )


class PgCandidates:
    """The candidates of one C-FIND, a page per :meth:`fetch`, each page one statement.

    The driver's terms are read one after the other, each over its own index range; a
    workitem is given under the first term (and at the smallest value) it satisfies.
    """

    def __init__(self, rows: Rows, prefilter: Prefilter) -> None:
        self._rows = rows
        self._driver = prefilter.driver()
        self._others = prefilter.others()
        self._term = 0
        self._last: tuple[Any, int] | None = None
        self._done = False

    def _scan(self, size: int) -> tuple[str, list[Any]]:
        """No condition on an index: every workitem, by ``seq``."""
        args: list[Any] = []
        where = []
        if self._last is not None:
            where.append("w.seq > %s")
            args.append(self._last[1])
        where += [_exists(c, args) for c in self._others]
        clause = " WHERE " + " AND ".join(where) if where else ""
        args.append(size)
        sql = f"SELECT NULL, w.seq, w.dataset FROM ups_workitems w{clause} ORDER BY w.seq LIMIT %s"
        return sql, args

    def _sql(self, size: int) -> tuple[str, list[Any]]:
        driver = self._driver
        if driver is None:
            return self._scan(size)
        term = driver.terms[self._term]
        column = _column("k", term)
        args: list[Any] = [driver.key]
        last = self._last
        if isinstance(term, Equal):
            where = ["k.key = %s", _term("k", term, args)]
            if last is not None:  # the value is fixed: the index reads on from the seq
                where.append("k.seq > %s")
                args.append(last[1])
        else:
            where = ["k.key = %s", _term("k", term, args, None if last is None else last[0])]
            if last is not None:
                where.append(f"({column}, k.seq) > (%s, %s)")
                args += last
        earlier_args: list[Any] = []
        earlier = [_term("d", t, earlier_args) for t in driver.terms[: self._term]]
        if not isinstance(term, Equal):  # a range or pattern: several values may satisfy it
            d_column = _column("d", term)
            earlier.append(f"({d_column} < {column} AND {_term('d', term, earlier_args)})")
        if earlier:
            args += [driver.key, *earlier_args]
            where.append(
                "NOT EXISTS (SELECT 1 FROM ups_workitem_keys d WHERE d.seq = k.seq"
                f" AND d.key = %s AND ({' OR '.join(earlier)}){PER_CANDIDATE})"
            )
        where += [_exists(c, args) for c in self._others]
        args.append(size)
        sql = (
            f"SELECT {column}, k.seq, w.dataset FROM ups_workitem_keys k"
            " JOIN ups_workitems w ON w.seq = k.seq WHERE " + " AND ".join(where)
        )
        return sql + f" ORDER BY {column}, k.seq LIMIT %s", args

    def plan(self) -> list[str]:
        """PostgreSQL's plan of the next page (for tests and the curious)."""
        sql, args = self._sql(64)
        return [str(row[0]) for row in self._rows("EXPLAIN " + sql, args)]

    def fetch(self, size: int) -> list[bytes]:
        """Up to ``size`` more candidates (stored encodings); empty at the end."""
        out: list[bytes] = []
        while not self._done and len(out) < size:
            sql, args = self._sql(size - len(out))
            rows = self._rows(sql, args)
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
