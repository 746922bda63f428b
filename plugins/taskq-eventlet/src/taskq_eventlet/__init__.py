"""taskq-eventlet: the eventlet pool and the early monkey-patching it needs."""
