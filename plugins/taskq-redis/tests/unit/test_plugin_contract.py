"""taskq-redis as a plugin: a cheap plugin module offering the Redis transport, result backend and beat scheduler."""

from __future__ import annotations

from taskq.testing.conformance import PluginContract


class TestRedisPlugin(PluginContract):
    entry_point = "redis"
    distribution = "taskq-redis"
    offers = {
        "result_backends": ["redis", "redis+socket", "rediss", "sentinel"],
        "schedulers": ["redis"],
        "transports": ["redis", "redis+socket", "rediss", "sentinel"],
    }

    def test_every_scheme_selects_the_one_transport_and_the_one_backend(self) -> None:
        offered = self.offered()
        assert set(offered["transports"].values()) == {"taskq_redis.transport:RedisTransport"}
        assert set(offered["result_backends"].values()) == {"taskq_redis.backend:RedisBackend"}
