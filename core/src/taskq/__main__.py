"""``python -m taskq``: the taskq command line."""

from __future__ import annotations

from taskq.cli.main import main

main()
