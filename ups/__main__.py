"""``python -m ups`` runs the ``dcmups`` command line."""

from __future__ import annotations

from ups.cli import main

raise SystemExit(main())
