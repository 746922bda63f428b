"""The gevent pool against the pool conformance suite, in a monkey-patched process.

The suite's jobs block with ``time.sleep``, as real tasks do; on gevent they overlap
only once gevent has patched the standard library, which ``taskq worker --pool=gevent``
does before it imports the app. This test process stays unpatched (the other tests need
the real standard library), so the suite runs in a child pytest that patches first:
:func:`test_the_pool_passes_the_conformance_suite_when_monkey_patched` starts it, and the
child, seeing :data:`CHILD_FLAG`, collects :class:`TestGeventPool`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from taskq.drivers.pool import Pool
from taskq.testing.conformance import PoolContract
from taskq_gevent.pool import GeventPool, is_patched

#: Set in the child's environment: run the suite here instead of starting a child.
CHILD_FLAG = "TASKQ_GEVENT_CONFORMANCE_CHILD"
# Seconds the whole child run may take.
CHILD_TIMEOUT = 100.0

PATCH_THEN_PYTEST = (
    "from gevent import monkey; monkey.patch_all()\nimport sys, pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"
)

if os.environ.get(CHILD_FLAG) == "1":

    class TestGeventPool(PoolContract):
        @pytest.fixture
        def pool_class(self) -> type[Pool]:
            assert is_patched(), "the conformance child should run monkey-patched"
            return GeventPool

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
