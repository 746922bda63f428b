"""The conformance kit: test suites every transport, result backend and pool must pass.

A plugin's tests subclass a contract and provide its fixtures::

    from taskq.testing.conformance import TransportContract


    class TestSqliteTransport(TransportContract):
        @pytest.fixture
        def transport(self, tmp_path: Path) -> Iterator[SqliteTransport]:
            transport = SqliteTransport(f"sqlite:///{tmp_path}/broker.db")
            yield transport
            transport.close()

A transport that several processes share subclasses :class:`MultiProcessTransportContract`
instead: the same suite and fixture, plus tests that run real child processes; one that
keeps its events in a bounded log readers follow by position (SQLite, the filesystem)
adds :class:`EventLogContract`. Likewise, a
beat scheduler that leases its store's lock and stands by for it subclasses
:class:`StandbySchedulerContract` instead of :class:`SchedulerContract`.

A result backend on a key-value store (a :class:`~taskq.drivers.backend.KeyValueBackend`)
subclasses :class:`KeyValueStoreContract` besides :class:`ResultBackendContract`: it checks
the storage primitives the result logic is built on, with the same ``backend`` fixture.
Every backend and transport also adds :class:`BackendForkSafetyContract` or
:class:`TransportForkSafetyContract` (same fixtures): the driver keeps working in
children forked while the parent's threads use it.

See :class:`TransportContract`, :class:`MultiProcessTransportContract`,
:class:`ResultBackendContract`, :class:`KeyValueStoreContract`, :class:`PoolContract`,
:class:`GreenPoolContract` (gevent, eventlet), :class:`SchedulerContract` (beat schedulers)
and :class:`SerializerContract` for the fixtures each one needs. :class:`PluginContract` checks the plugin itself (its
entry point, a cheap plugin module, drivers of the right base class) and needs only two
class attributes::

    class TestRedisPlugin(PluginContract):
        entry_point = "redis"
        distribution = "taskq-redis"

The classes carry no ``Test`` prefix, so pytest collects them only through a subclass.
For servers a plugin's tests start themselves (memcached, moto, a private Redis), the
helpers of :mod:`taskq.testing.conformance.servers` pick a free port, wait for the
server with a deadline, stop it by process id, and fail with the install command when
its binary is missing.
"""

from __future__ import annotations

from taskq.testing.conformance.backend import ResultBackendContract
from taskq.testing.conformance.event_log import EventLogContract
from taskq.testing.conformance.fork_safety import BackendForkSafetyContract, TransportForkSafetyContract
from taskq.testing.conformance.green_pool import GreenPoolContract
from taskq.testing.conformance.key_value import KeyValueStoreContract
from taskq.testing.conformance.plugin import PluginContract
from taskq.testing.conformance.pool import PoolContract
from taskq.testing.conformance.processes import MultiProcessTransportContract, TransportRecipe
from taskq.testing.conformance.scheduler import SchedulerContract, StandbySchedulerContract
from taskq.testing.conformance.serializer import SerializerContract
from taskq.testing.conformance.servers import (
    MEMCACHED,
    MOTO,
    REDIS,
    SECANTUSDB,
    Binary,
    ServerProcess,
    accepts_connections,
    free_port,
    moto_server,
    reset_moto,
    running_server,
    start_server,
)
from taskq.testing.conformance.transport import TransportContract

__all__ = [
    "MEMCACHED",
    "MOTO",
    "REDIS",
    "SECANTUSDB",
    "BackendForkSafetyContract",
    "Binary",
    "EventLogContract",
    "GreenPoolContract",
    "KeyValueStoreContract",
    "MultiProcessTransportContract",
    "PluginContract",
    "PoolContract",
    "ResultBackendContract",
    "SchedulerContract",
    "SerializerContract",
    "ServerProcess",
    "StandbySchedulerContract",
    "TransportContract",
    "TransportForkSafetyContract",
    "TransportRecipe",
    "accepts_connections",
    "free_port",
    "moto_server",
    "reset_moto",
    "running_server",
    "start_server",
]
