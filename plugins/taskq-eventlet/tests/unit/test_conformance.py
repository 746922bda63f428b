"""The eventlet pool against the pool conformance suite, in a monkey-patched process.

The suite's jobs block with ``time.sleep``, as real tasks do; on eventlet they overlap
only once eventlet has patched the standard library, which
``taskq worker --pool=eventlet`` does before it imports the app. This test process stays
unpatched (the other tests need the real standard library), so the suite runs in a child
pytest that patches first: :func:`test_the_pool_passes_the_conformance_suite_when_monkey_patched`
starts it, and the child, seeing :data:`CHILD_FLAG`, collects :class:`TestEventletPool`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_eventlet.pool import EventletPool, is_patched

#: Set in the child's environment: run the suite here instead of starting a child.
CHILD_FLAG = "TASKQ_EVENTLET_CONFORMANCE_CHILD"
# Seconds the whole child run may take.
CHILD_TIMEOUT = 100.0

PATCH_THEN_PYTEST = (
    "import warnings\n"
    "with warnings.catch_warnings():\n"
    "    warnings.simplefilter('ignore')  # eventlet's deprecation notice\n"
    "    import eventlet\n"
    "eventlet.monkey_patch()\n"
    "import sys, pytest\n"
    "sys.exit(pytest.main(sys.argv[1:]))\n"
)

if os.environ.get(CHILD_FLAG) == "1":

    class TestEventletPool(PoolContract):
        @pytest.fixture
        def pool_class(self) -> type[Pool]:
            assert is_patched(), "the conformance child should run monkey-patched"
            return EventletPool

else:

    def test_the_pool_passes_the_conformance_suite_when_monkey_patched() -> None:
        child = subprocess.run(
            [sys.executable, "-c", PATCH_THEN_PYTEST, __file__, "-q", "-rs"],
            env={**os.environ, CHILD_FLAG: "1"},
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        report = child.stdout + child.stderr
        assert child.returncode == 0, f"the conformance suite failed under monkey-patching:\n{report}"
        assert " passed" in report and " failed" not in report, report
