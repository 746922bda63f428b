"""taskq-gevent: the gevent pool and the early monkey-patching it needs."""
