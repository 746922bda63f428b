"""Checked by mypy (``nox -s typecheck``), never run: the types a user's code sees."""

from __future__ import annotations

from typing import assert_type

from taskq import App
from taskq.result import AsyncResult

app = App("types", read_config=False)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


async def client() -> None:
    assert_type(add.delay(1, 2), AsyncResult[int])
    assert_type(add.delay(1, 2).get(), int)
    # an async def task's result is what its coroutine returns, not the coroutine
    assert_type(fetch.delay("https://example.org").get(), bytes)
    assert_type(fetch.AsyncResult("id").get(), bytes)
    assert_type((await fetch.delay_async("u")).get(), bytes)
    add.delay(1, "2")  # type: ignore[arg-type]  # the arguments are the function's
    assert_type(add.apply_async((1, 2), countdown=5), AsyncResult[int])
    assert_type(fetch.apply_async(("u",), queue="io").get(), bytes)
    assert_type((await fetch.apply_async_async(("u",))).get(), bytes)
    assert_type((await add.apply_async_async((1, 2))).get(), int)
    add.apply_async((1, 2), countdwn=5)  # type: ignore[call-arg]  # a misspelt option is caught
