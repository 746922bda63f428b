"""taskq-prefork: the process pool (billiard children, time limits, per-child limits)."""
