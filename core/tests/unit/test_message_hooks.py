"""The two hooks around a message's bytes: after the client encodes it, before the worker decodes it.

Their ``test_hook_<name>`` tests live here (``test_hookspecs.py`` finds them anywhere under
core/tests), with what the worker does when a check refuses a message or fails.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest

from taskq import App
from taskq.drivers.transport import Message
from taskq.errors import ConfigError

MakePlugin = Callable[..., types.ModuleType]
StartWorker = Callable[..., Any]
WaitUntil = Callable[..., None]
TIMEOUT = 10.0  # seconds


def hooked_app(memory_url: str, *plugins: types.ModuleType) -> App:
    return App("tests", broker=memory_url, read_config=False, extra_plugins=list(plugins))


def test_hook_taskq_message_encoded(make_plugin: MakePlugin, memory_url: str) -> None:
    seen: list[tuple[bytes, str]] = []

    def message_encoded(app: App, message: Message) -> None:
        seen.append((message.body, message.content_type))
        message.headers["x-stamp"] = f"{app.main}:{len(message.body)}"

    app = hooked_app(memory_url, make_plugin("stamp", taskq_message_encoded=message_encoded))
    result = app.send_task("proj.add", [2, 3])
    [(body, content_type)] = seen
    assert content_type == "application/json" and body.startswith(b"[[2,3],")
    [delivery] = app.new_transport().claim([app.route("proj.add")], 1, lease=30)
    assert delivery.message.headers["x-stamp"] == f"tests:{len(body)}"
    assert delivery.message.headers["id"] == result.id


def test_an_exception_in_message_encoded_stops_the_send(make_plugin: MakePlugin, memory_url: str) -> None:
    def refuse(message: Message) -> None:
        raise ConfigError("no signing key")

    app = hooked_app(memory_url, make_plugin("refuse", taskq_message_encoded=refuse))
    with pytest.raises(ConfigError, match="no signing key"):
        app.send_task("proj.add", [2, 3])
    assert app.new_transport().depth(app.route("proj.add")) == 0


def test_hook_taskq_message_received(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    def message_received(app: App, message: Message) -> str | None:
        # Called before decoding: the raw headers and body, nothing parsed yet.
        assert isinstance(message.body, bytes)
        return "stamped 'no'" if message.headers.get("x-stamp") == "no" else None

    app = hooked_app(memory_url, make_plugin("gate", taskq_message_received=message_received))

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    app.send_task("proj.add", [1, 1], headers={"x-stamp": "no"})
    start_worker(app)
    assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
    wait_until(lambda: app.new_transport().dead_letters(), "the dead letter")
    [letter] = app.new_transport().dead_letters()
    assert letter.reason == "stamped 'no'"
    assert letter.message.headers["x-stamp"] == "no"


def test_message_received_sees_even_what_cannot_be_decoded(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    seen: list[bytes] = []

    def message_received(message: Message) -> None:
        seen.append(message.body)

    app = hooked_app(memory_url, make_plugin("watch", taskq_message_received=message_received))
    app.new_transport().publish("taskq", Message(b"\xff not a task", {}))
    start_worker(app)
    wait_until(lambda: app.new_transport().dead_letters(), "the dead letter")
    assert seen == [b"\xff not a task"]
    [letter] = app.new_transport().dead_letters()
    assert letter.reason.startswith("cannot decode the message")


def test_a_check_that_raises_dead_letters_the_message_and_names_the_plugin(
    make_plugin: MakePlugin, memory_url: str, start_worker: StartWorker, wait_until: WaitUntil
) -> None:
    def message_received(message: Message) -> str | None:
        if message.headers.get("x-stamp") == "boom":
            raise RuntimeError("plugin bug")
        return None

    app = hooked_app(memory_url, make_plugin("buggy", taskq_message_received=message_received))

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    app.send_task("proj.add", [1, 1], headers={"x-stamp": "boom"})
    start_worker(app)
    assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
    wait_until(lambda: app.new_transport().dead_letters(), "the dead letter")
    [letter] = app.new_transport().dead_letters()
    assert letter.reason == "plugin buggy could not check the message: RuntimeError: plugin bug"


def test_the_first_reason_wins(make_plugin: MakePlugin, memory_url: str) -> None:
    first = make_plugin("first", taskq_message_received=lambda: "first says no")
    second = make_plugin("second", taskq_message_received=lambda: "second says no")
    app = hooked_app(memory_url, first, second)
    assert app.plugins.message_received(app, Message(b"", {})) in {"first says no", "second says no"}
    silent = hooked_app(memory_url, make_plugin("silent", taskq_message_received=lambda: None))
    assert silent.plugins.message_received(silent, Message(b"", {})) is None


def test_a_decode_error_raised_by_a_check_refuses_the_message_but_a_config_error_stops(
    make_plugin: MakePlugin, memory_url: str
) -> None:
    from taskq.errors import MessageDecodeError

    def decode_error(message: Message) -> None:
        raise MessageDecodeError("the check could not read it")

    def config_error(message: Message) -> None:
        raise ConfigError("no trust store")

    app = hooked_app(memory_url, make_plugin("reads", taskq_message_received=decode_error))
    reason = app.plugins.message_received(app, Message(b"", {}))
    assert reason == "plugin reads could not check the message: MessageDecodeError: the check could not read it"
    broken = hooked_app(memory_url, make_plugin("broken", taskq_message_received=config_error))
    with pytest.raises(ConfigError, match="no trust store"):
        broken.plugins.message_received(broken, Message(b"", {}))
