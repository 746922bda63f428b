"""taskq-solo: the inline pool."""
