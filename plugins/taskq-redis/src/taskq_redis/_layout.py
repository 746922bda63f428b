"""kombu's names on Redis that the transport and the mailbox share: a queue's lists, by priority.

Private: nothing outside taskq-redis imports it (:mod:`taskq_redis.transport` re-exports it).
"""

from __future__ import annotations

#: kombu's separator between a queue's name and its priority step, and between the parts
#: of a binding (``<routing key>SEP<pattern>SEP<queue>``).
SEP = "\x06\x16"
#: kombu's default priority steps: every priority is rounded down to one of these.
PRIORITY_STEPS = (0, 3, 6, 9)


def priority_step(priority: object) -> str:
    """The kombu priority step (as the list suffix digit) of a message priority."""
    if priority is None:
        return "0"
    try:
        value = max(0, min(9, int(priority)))  # type: ignore[call-overload]  # any int-like value
    except (TypeError, ValueError):
        return "0"
    step = 0
    for candidate in PRIORITY_STEPS:
        if value >= candidate:
            step = candidate
    return str(step)


def queue_key(queue: str, priority: object = None, prefix: str = "") -> str:
    """The Redis list that holds ``queue``'s messages of ``priority`` (kombu's name)."""
    step = priority_step(priority)
    return f"{prefix}{queue}" if step == "0" else f"{prefix}{queue}{SEP}{step}"


def kombu_topic_pattern(binding_key: str) -> str:
    """The regular expression kombu's virtual topic exchange stores for ``binding_key``
    (in ``_kombu.binding.<exchange>`` on Redis), written as kombu writes it."""
    wildcards = {"*": r"[^\.]+", "#": r".*?"}
    escaped = "".join(c if c.isalnum() or c in ".#*" else ("\\000" if c == "\000" else "\\" + c) for c in binding_key)
    return "^{}$".format(r"\.".join(wildcards.get(word, word) for word in escaped.split(".")))


__all__ = ["PRIORITY_STEPS", "SEP", "kombu_topic_pattern", "priority_step", "queue_key"]
