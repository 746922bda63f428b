"""Workflows with results over rpc://: a chain's result reaches the client that sent it
(each step keeps the client's reply address), and a chord, which rpc:// cannot run (no
counter its header's tasks share), is refused when it is sent, naming backends that can."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskq import App, chain, chord, group
from taskq.errors import ConfigError
from taskq.testing import start_worker

pytestmark = pytest.mark.integration

# Seconds a workflow's result may take.
RESULT_TIMEOUT = 20.0


@pytest.fixture
def app(broker_url: str, queue: str) -> Iterator[App]:
    app = App("rpcflows", broker=broker_url, backend="rpc://", read_config=False, task_default_queue=queue)

    @app.task(name="rpcflows.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="rpcflows.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    yield app
    app.close()


def test_a_chain_s_result_reaches_the_client_over_rpc(app: App) -> None:
    add = app.tasks["rpcflows.add"]
    with start_worker(app, pool="solo"):
        result = chain(add.s(1, 1), add.s(10), add.s(100)).apply_async()
        assert result.get(timeout=RESULT_TIMEOUT) == 112  # timed out: the later steps replied to the worker


def test_a_chord_over_rpc_is_refused_at_send_naming_the_backends_that_can(app: App) -> None:
    add, tsum = app.tasks["rpcflows.add"], app.tasks["rpcflows.tsum"]
    for flow in (
        chord([add.s(1, 1), add.s(2, 2)], tsum.s()),
        chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s()),  # a chord once sent
    ):
        with pytest.raises(ConfigError, match=r"cannot run a chord.*memory://"):
            flow.apply_async()
    assert app.transport.depth(str(app.conf["task_default_queue"])) == 0  # nothing half sent
