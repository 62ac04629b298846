"""One C-FIND against a :class:`~ups.services.scp.store.Store`, a page at a time.

This module owns the store-independent loop of streaming C-FIND (issue 17): the query
is compiled once (:func:`ups.services.scp.prefilter.compile_query`; a malformed key is
refused with A900 before any match), the store's :class:`~ups.services.scp.store.Candidates`
give a page of stored encodings per call, and each is matched and turned into its
response Identifier by :class:`ups.services.scp.projection.Projector`. Every call runs on
the store's thread and returns after one page, so a C-FIND whose candidates mostly fail
the final check still hands the store thread back between pages, and memory holds one
page whatever the result size.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from ups.dimse.datasets import EXPLICIT_VR_LITTLE_ENDIAN
from ups.services.scp.matching import matches
from ups.services.scp.prefilter import compile_query
from ups.services.scp.projection import Projector
from ups.services.scp.store import Store, decode_dataset

__all__ = ["PAGE", "Find", "find_workitems"]

PAGE = 32
"""Candidates read per page: small enough to stay in memory, large enough to amortise."""


class Find:
    """A C-FIND in progress: :meth:`next_page` until it returns None, then :meth:`close`."""

    def __init__(
        self,
        store: Store,
        query: Dataset,
        transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
        *,
        page: int = PAGE,
    ) -> None:
        self._projector = Projector(query, transfer_syntax)
        self._candidates = store.find_candidates(compile_query(query))
        self._page = page
        self.candidates = 0
        """How many candidates the store gave (the prefilter's yield, for tests and bench)."""

    def next_page(self) -> list[bytes] | None:
        """The response Identifiers of the next page's matches (maybe none); None: done."""
        stored = self._candidates.fetch(self._page)
        if not stored:
            return None
        self.candidates += len(stored)
        out = []
        for blob in stored:
            identifier = self._projector(blob)
            if identifier is not None:
                out.append(identifier)
        return out

    def close(self) -> None:
        self._candidates.close()


def find_workitems(store: Store, query: Dataset, *, limit: int | None = None) -> list[Dataset]:
    """The whole stored workitems that match ``query``, in the store's order (tests, tools)."""
    candidates = store.find_candidates(compile_query(query))
    found: list[Dataset] = []
    try:
        while limit is None or len(found) < limit:
            page = candidates.fetch(PAGE)
            if not page:
                break
            found += [ds for ds in map(decode_dataset, page) if matches(ds, query)]
    finally:
        candidates.close()
    return found if limit is None else found[:limit]
