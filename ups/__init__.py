"""dcmups: an asyncio DICOM network stack and Unified Procedure Step toolkit."""

from __future__ import annotations

__version__ = "0.1.0"

IMPLEMENTATION_CLASS_UID = "2.25.7099378959768370569084112868570984455"
"""Implementation Class UID sent in every association (PS3.7 D.3.3.2)."""

IMPLEMENTATION_VERSION_NAME = "DCMUPS_010"
"""Implementation Version Name (PS3.7 D.3.3.2.2: at most 16 characters)."""
