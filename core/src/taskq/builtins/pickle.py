"""Built-in plugin: the pickle serializer, refused by workers unless accept_content names it.

Unpickling runs code chosen by the sender: only accept it from senders you trust. The
pickle module itself is imported on first use: every worker loads this plugin, few use it.
"""

from __future__ import annotations

from taskq.drivers.serializer import Serializer
from taskq.hookspecs import hookimpl


def _dumps(value: object) -> bytes:
    import pickle

    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> object:
    import pickle

    return pickle.loads(data)  # noqa: S301 - only reached when accept_content allows pickle


PICKLE = Serializer("pickle", "application/x-python-serialize", "binary", _dumps, _loads)


@hookimpl
def taskq_register_serializers() -> dict[str, Serializer]:
    return {"pickle": PICKLE}
