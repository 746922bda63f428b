"""Run as ``python -m e2e_app.green_redis gevent|eventlet PREFIX``: taskq-redis's client in a patched process.

Monkey-patches first, as ``taskq worker --pool=gevent|eventlet`` does, then uses the
client the way the worker does, while a green thread ticks every few milliseconds:
whatever blocked the OS thread instead of yielding to the hub shows as ticks missing.
Prints one JSON object for tests/test_redis_green.py to check.
"""

from __future__ import annotations

import sys

LIBRARY, PREFIX = sys.argv[1], sys.argv[2]
if LIBRARY == "gevent":
    from gevent import monkey

    monkey.patch_all()
else:
    import eventlet

    eventlet.monkey_patch()

import json  # noqa: E402 - after the patching, as in a worker
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from taskq_redis._resp import Client, is_green  # noqa: E402

# Seconds between ticks of the green thread that shows whether the hub ran.
TICK = 0.01
# Seconds the client waits on a server that never answers, and for a message that never comes.
SHORT_WAIT = 0.5

ticks = 0


def tick() -> None:
    global ticks
    while True:
        ticks += 1
        time.sleep(TICK)


def ticks_during(step: Callable[[], object]) -> tuple[int, object]:
    """How many ticks ran while ``step()`` did, and what it returned or raised (by class name)."""
    before = ticks
    try:
        outcome = step()
    except Exception as exc:
        outcome = type(exc).__name__
    return ticks - before, outcome


threading.Thread(target=tick, daemon=True).start()  # a green thread: threading is patched
time.sleep(TICK)
report: dict[str, object] = {}

client = Client(host="127.0.0.1", port=6379, socket_timeout=5.0, retries=0)
conn = client.connection()
conn.ensure()
report["green"] = is_green(conn._sock)  # what the connection decided
report["ping"] = client.execute("PING") == b"PONG"

# Waiting for a message that never comes: the hub runs meanwhile.
pubsub = client.pubsub()
pubsub.subscribe(PREFIX + "channel")
pubsub.get_message(timeout=SHORT_WAIT)  # the subscription's confirmation
report["wait_ticks"], report["wait"] = ticks_during(lambda: pubsub.get_message(timeout=SHORT_WAIT))
report["can_read_idle"] = pubsub.connection.can_read(0)
client.execute("PUBLISH", PREFIX + "channel", "hello")
deadline = time.monotonic() + 5.0
while not pubsub.connection.can_read(0) and time.monotonic() < deadline:
    time.sleep(TICK)
message = pubsub.get_message(timeout=0)
report["message"] = message["data"] == b"hello" if message else None
pubsub.close()

# A server that accepts and never answers: the read times out, and the hub runs meanwhile.
silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen()
mute = Client(host="127.0.0.1", port=silent.getsockname()[1], socket_timeout=SHORT_WAIT, retries=0)
report["silent_ticks"], report["silent"] = ticks_during(lambda: mute.execute("PING"))
silent.close()
client.close()
print(json.dumps(report))
