"""The fault suite's fixtures and its closing summary: what each run tried, lost and duplicated.

Every test here records what it checked in the session's :class:`faultkit.Ledger` (the
``ledger`` fixture), per transport; at the end of the run pytest prints the table under
"fault suite summary" (see docs/development/faults.md for how to read it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# faultkit sits beside this file; e2e_helpers and e2e_app one folder up (tests/conftest.py adds that).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from faultkit import LEDGER_KEY, Ledger  # noqa: E402 - after the path above


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LEDGER_KEY] = Ledger()


@pytest.fixture(scope="session")
def ledger(pytestconfig: pytest.Config) -> Ledger:
    """Where each fault test writes down what it tried and what it found."""
    return pytestconfig.stash[LEDGER_KEY]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    ledger = config.stash.get(LEDGER_KEY, None)
    if ledger is None or ledger.is_empty():
        return
    terminalreporter.section("fault suite summary")
    for line in ledger.report_lines():
        terminalreporter.write_line(line)
