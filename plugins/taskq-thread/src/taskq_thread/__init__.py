"""taskq-thread: the thread pool."""
