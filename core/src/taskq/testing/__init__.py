"""Testing helpers for taskq and its plugins: an in-process worker, and the conformance kit.

``start_worker`` runs a real worker in a thread of the test process; ``WorkerProcess``
starts one as a process of its own, and ``run_worker`` runs one until it exits (for tests
of how a worker starts); the pytest plugin
(:mod:`taskq.testing.pytest_plugin`) wraps it in fixtures. The conformance kit lives in
:mod:`taskq.testing.conformance`.
"""

from __future__ import annotations

from taskq.testing.process import WorkerProcess, WorkerRun, run_worker, settings_env
from taskq.testing.worker import start_worker

__all__ = ["WorkerProcess", "WorkerRun", "run_worker", "settings_env", "start_worker"]
