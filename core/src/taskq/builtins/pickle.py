"""Built-in plugin: the pickle serializer, refused by workers unless accept_content names it.

Unpickling runs code chosen by the sender: only accept it from senders you trust.
"""

from __future__ import annotations

import pickle

from taskq.hookspecs import hookimpl
from taskq.serialization import Serializer


def _dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> object:
    return pickle.loads(data)  # noqa: S301 - only reached when accept_content allows pickle


PICKLE = Serializer("pickle", "application/x-python-serialize", "binary", _dumps, _loads)


@hookimpl
def taskq_register_serializers() -> dict[str, Serializer]:
    return {"pickle": PICKLE}
