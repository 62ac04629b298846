"""The root of every error this package raises on purpose.

Each layer (pdu, dimse, net, services) derives one family from ``DicomError`` that
carries its wire consequence; the CLI catches ``DicomError`` once and prints it.
"""

from __future__ import annotations


class DicomError(Exception):
    """Base class of all dcmups errors."""
