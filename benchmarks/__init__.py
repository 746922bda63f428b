"""Reproducible benchmarks: taskq against Celery and huey on local SQLite (``nox -s bench``)."""
