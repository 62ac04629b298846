"""Settings shared by the whole test suite.

Hypothesis explores new examples on every local run (that is how the scanner's edge
cases were found); CI runs a fixed, derandomized sequence (``HYPOTHESIS_PROFILE=ci``,
set by ``.ci/run``) so that a landing is judged on the same examples each time.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
