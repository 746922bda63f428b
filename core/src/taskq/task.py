"""Tasks: the :class:`Task` wrapper made by ``@app.task``, and its request context.

A task keeps its function's signature (``Task[P, R]``), so ``add.delay(1, "x")`` is a
type error when ``add`` takes two ints. Calling the task runs the function here;
``delay``/``apply_async`` send it to a worker; ``apply`` runs it eagerly with the same
retry and error handling a worker applies.
"""

from __future__ import annotations

import inspect
import random
import reprlib
import types
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar, cast, overload

from taskq._ids import new_id
from taskq.errors import MaxRetriesExceededError, Retry
from taskq.sending import NO_OPTIONS, SendOptions, send, send_options, takes_send_options

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.canvas import Signature, chunks
    from taskq.result import AsyncResult, EagerResult


def _call_text(args: Sequence[object], kwargs: Mapping[str, object]) -> str:
    parts = [reprlib.repr(arg) for arg in args] + [f"{key}={reprlib.repr(value)}" for key, value in kwargs.items()]
    return f"({', '.join(parts)})"


P = ParamSpec("P")
R = TypeVar("R", covariant=True)
T = TypeVar("T")

#: Options a task can be declared with, and their defaults (None: from the settings).
TASK_OPTIONS: dict[str, object] = {
    "bind": False,
    "max_retries": None,
    "default_retry_delay": None,
    "acks_late": None,
    "acks_on_failure_or_timeout": None,
    "reject_on_worker_lost": None,
    "ignore_result": None,
    "store_errors_even_if_ignored": None,
    "track_started": None,
    "rate_limit": None,
    "time_limit": None,
    "soft_time_limit": None,
    "serializer": None,
    "queue": None,
    "priority": None,
    "expires": None,
    "autoretry_for": (),
    "dont_autoretry_for": (),
    "retry_kwargs": {},
    "retry_backoff": False,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "throws": (),
    "typing": True,
}


#: The methods a subclass of Task may override to hear of its runs, as in Celery.
HANDLERS = ("before_start", "on_success", "on_failure", "on_retry", "after_return")


@dataclass(frozen=True, slots=True)
class ExceptionInfo:
    """What a handler is told of an exception (Celery's ``einfo``)."""

    exception: BaseException
    traceback: str

    @property
    def type(self) -> type[BaseException]:
        return type(self.exception)

    def __str__(self) -> str:
        return self.traceback


@dataclass
class Context:
    """What a running task knows about the message that started it (``self.request``)."""

    id: str | None = None
    #: The task's name.
    task: str | None = None
    args: Sequence[object] = ()
    kwargs: Mapping[str, object] = field(default_factory=dict)
    retries: int = 0
    eta: str | None = None
    expires: str | None = None
    is_eager: bool = False
    headers: Mapping[str, object] = field(default_factory=dict)
    delivery_info: Mapping[str, object] = field(default_factory=dict)
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: Mapping[str, object] | None = None
    chain: Sequence[Mapping[str, object]] | None = None
    callbacks: Sequence[Mapping[str, object]] | None = None
    errbacks: Sequence[Mapping[str, object]] | None = None
    reply_to: str | None = None
    correlation_id: str | None = None
    origin: str | None = None
    hostname: str | None = None
    timelimit: Sequence[float | None] = (None, None)
    ignore_result: bool = False
    called_directly: bool = True
    deliveries: int = 1
    #: The names of the stamps the message carries (see docs/canvas.md, "Stamping"); None: none.
    stamped_headers: list[str] | None = None
    #: The stamps the message carries, by name; None: none.
    stamps: Mapping[str, object] | None = None
    #: Ids of the tasks this one sent while running (stored as the result's children).
    children: list[str] = field(default_factory=list)


def backoff_delay(retries: int, factor: float, maximum: float, jitter: bool, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``retries + 1``: exponential, capped, full jitter."""
    countdown = min(maximum, factor * (2.0**retries))
    if jitter:
        countdown = rng.uniform(0, countdown) if rng is not None else random.uniform(0, countdown)
    return max(0.0, countdown)


class Task(Generic[P, R]):
    """A registered task. Made by ``@app.task``; see the module docstring."""

    name: str
    app: App

    def __init__(
        self,
        app: App | None = None,
        fn: Callable[..., R] | None = None,
        name: str | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        options = options or {}
        if fn is None:
            # A class-based task (``class Add(app.Task): def run(self, x, y)``, registered with
            # ``app.register_task``): its own run method is the function.
            if type(self).run is Task.run:
                raise TypeError(f"{type(self).__name__} is used as a task: define its run() method")
            fn = cast("Callable[..., R]", self.run)
            name = name or cast("str | None", vars(type(self)).get("name"))
        name = name or ""
        unknown = set(options) - set(TASK_OPTIONS)
        if unknown:
            from taskq.config import suggest
            from taskq.errors import ConfigError

            bad = sorted(unknown)[0]
            raise ConfigError(f"unknown task option {bad!r} for {name}{suggest(bad, TASK_OPTIONS)}")
        if app is not None:
            self.app = app
        self.fn = fn
        self.name = name
        self.__name__ = getattr(fn, "__name__", name)
        self.__qualname__ = getattr(fn, "__qualname__", name)
        self.__doc__ = fn.__doc__
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__wrapped__ = fn
        # A subclass (``@app.task(base=MyTask)``) sets defaults as class attributes, as in Celery.
        declared = {
            key: value
            for klass in reversed(type(self).__mro__[: type(self).__mro__.index(Task)])
            for key, value in vars(klass).items()
            if key in TASK_OPTIONS
        }
        merged = {**TASK_OPTIONS, **declared, **options}
        self.bind = bool(merged["bind"])
        self.max_retries = cast("int | None", merged["max_retries"])
        self.default_retry_delay = cast("float | None", merged["default_retry_delay"])
        self.acks_late = cast("bool | None", merged["acks_late"])
        self.acks_on_failure_or_timeout = cast("bool | None", merged["acks_on_failure_or_timeout"])
        self.reject_on_worker_lost = cast("bool | None", merged["reject_on_worker_lost"])
        self.ignore_result = cast("bool | None", merged["ignore_result"])
        self.store_errors_even_if_ignored = cast("bool | None", merged["store_errors_even_if_ignored"])
        self.track_started = cast("bool | None", merged["track_started"])
        self.rate_limit = cast("str | None", merged["rate_limit"])
        self.time_limit = cast("float | None", merged["time_limit"])
        self.soft_time_limit = cast("float | None", merged["soft_time_limit"])
        self.serializer = cast("str | None", merged["serializer"])
        self.queue = cast("str | None", merged["queue"])
        self.priority = cast("int | None", merged["priority"])
        self.expires = cast("float | None", merged["expires"])
        self.autoretry_for = tuple(cast("Sequence[type[BaseException]]", merged["autoretry_for"]))
        self.dont_autoretry_for = tuple(cast("Sequence[type[BaseException]]", merged["dont_autoretry_for"]))
        self.retry_kwargs = dict(cast("Mapping[str, object]", merged["retry_kwargs"]))
        self.retry_backoff = cast("bool | float", merged["retry_backoff"])
        self.retry_backoff_max = float(cast(float, merged["retry_backoff_max"]))
        self.retry_jitter = bool(merged["retry_jitter"])
        self.throws = tuple(cast("Sequence[type[BaseException]]", merged["throws"]))
        #: Check the arguments of a send against the function's signature (Celery's ``typing``).
        self.typing = bool(merged["typing"])
        self._parameters: inspect.Signature | None = None
        #: The handlers a subclass overrides (before_start, on_success...): only those are called.
        self.handlers = frozenset(
            handler for handler in HANDLERS if getattr(type(self), handler) is not getattr(Task, handler)
        )
        # A context variable, not a thread-local: each thread, greenlet and asyncio task
        # running this task sees its own request.
        self._requests: ContextVar[tuple[Context, ...]] = ContextVar(
            f"taskq.request.{name or type(self).__qualname__}", default=()
        )

    # ---- Handlers: a subclass overrides them (``@app.task(base=MyTask)``) --------------------

    def before_start(self, task_id: str, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """Called in the worker just before the task runs."""

    def on_success(self, retval: object, task_id: str, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """Called in the worker after the task returned ``retval`` (and it was stored)."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        einfo: ExceptionInfo,
    ) -> None:
        """Called in the worker after the task raised ``exc`` and will not be retried."""

    def on_retry(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        einfo: ExceptionInfo,
    ) -> None:
        """Called in the worker after the task asked to be retried (``exc``: why)."""

    def after_return(
        self,
        status: str,
        retval: object,
        task_id: str,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        einfo: ExceptionInfo | None,
    ) -> None:
        """Called in the worker after the task succeeded or failed (not after a retry, an
        ``Ignore`` or a ``Reject``), with its state and its return value or exception."""

    def resolve_defaults(self) -> None:
        """Apply ``task_annotations``, then fill options left unset from the app's settings
        (once the settings are final)."""
        conf = self.app.conf
        self._annotate(conf["task_annotations"])
        if self.max_retries is None and "max_retries" not in self.retry_kwargs:
            self.max_retries = cast(int, conf["task_max_retries"])
        if self.default_retry_delay is None:
            self.default_retry_delay = float(cast(float, conf["task_default_retry_delay"]))
        if self.acks_late is None:
            self.acks_late = bool(conf["task_acks_late"])
        if self.acks_on_failure_or_timeout is None:
            self.acks_on_failure_or_timeout = bool(conf["task_acks_on_failure_or_timeout"])
        if self.reject_on_worker_lost is None:
            self.reject_on_worker_lost = bool(conf["task_reject_on_worker_lost"])
        if self.ignore_result is None:
            self.ignore_result = bool(conf["task_ignore_result"])
        if self.store_errors_even_if_ignored is None:
            self.store_errors_even_if_ignored = bool(conf["task_store_errors_even_if_ignored"])
        if self.track_started is None:
            self.track_started = bool(conf["task_track_started"])
        if self.time_limit is None:
            self.time_limit = cast("float | None", conf["task_time_limit"])
        if self.soft_time_limit is None:
            self.soft_time_limit = cast("float | None", conf["task_soft_time_limit"])
        if self.rate_limit is None:
            self.rate_limit = cast("str | None", conf["task_default_rate_limit"])

    def _annotate(self, annotations: object) -> None:
        """Celery's ``task_annotations``: options (and handlers) for ``"*"`` and for this
        task's name, which override those the task was declared with."""
        from taskq.config import suggest
        from taskq.errors import ConfigError

        tables = annotations if isinstance(annotations, (list, tuple)) else [annotations]
        for table in tables:
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"task_annotations must map a task name (or '*') to its options, as "
                    f"{{'proj.add': {{'rate_limit': '10/s'}}}}, not {table!r}"
                )
            for key in ("*", self.name):
                options = table.get(key)
                if options is None:
                    continue
                if not isinstance(options, Mapping):
                    raise ConfigError(f"task_annotations[{key!r}] must be a mapping of options, not {options!r}")
                for option, value in options.items():
                    if option in HANDLERS and callable(value):
                        setattr(self, option, types.MethodType(value, self))
                        self.handlers = self.handlers | {option}
                    elif option in TASK_OPTIONS and option != "bind":
                        setattr(self, option, tuple(value) if isinstance(value, list) else value)
                    else:
                        raise ConfigError(
                            f"task_annotations[{key!r}] sets {option!r}, which is not a task option"
                            f"{suggest(str(option), [*TASK_OPTIONS, *HANDLERS])}"
                        )

    # ---- Running here -------------------------------------------------------------

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process, as a plain call."""
        if not self._requests.get():
            # A direct call: give the task a context so self.request works.
            self.push_request(Context(task=self.name, args=args, kwargs=kwargs, called_directly=True))
            try:
                return self.run(*args, **kwargs)
            finally:
                self.pop_request()
        return self.run(*args, **kwargs)

    def run(self, *args: object, **kwargs: object) -> R:
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    @property
    def request(self) -> Context:
        """The context of the task running now in this thread."""
        stack = self._requests.get()
        return stack[-1] if stack else Context()

    def push_request(self, context: Context) -> None:
        self._requests.set((*self._requests.get(), context))

    def pop_request(self) -> None:
        self._requests.set(self._requests.get()[:-1])

    # ---- Sending --------------------------------------------------------------------

    # An ``async def`` task's result is what its coroutine returns: the overloads say so.
    @overload
    def delay(self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> AsyncResult[T]: ...

    @overload
    def delay(self: Task[P, T], *args: P.args, **kwargs: P.kwargs) -> AsyncResult[T]: ...

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        """Send the task to a worker with these arguments."""
        return self._send(args, kwargs, NO_OPTIONS)

    @overload
    async def delay_async(
        self: Task[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncResult[T]: ...

    @overload
    async def delay_async(self: Task[P, T], *args: P.args, **kwargs: P.kwargs) -> AsyncResult[T]: ...

    async def delay_async(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        """``delay`` for asyncio code: sends without blocking the event loop."""
        import asyncio  # imported on use: it adds ~25 ms to every start-up

        return await asyncio.to_thread(self._send, args, kwargs, NO_OPTIONS)

    # An ``async def`` task's result is what its coroutine returns (as for ``delay``): the
    # overloads say so, the implementations below being untyped on that point.
    if TYPE_CHECKING:

        @overload
        @takes_send_options
        async def apply_async_async(
            self: Task[P, Coroutine[Any, Any, T]],
            args: Sequence[object] | None,
            kwargs: Mapping[str, object] | None,
            options: SendOptions,
        ) -> AsyncResult[T]: ...

        @overload
        @takes_send_options
        async def apply_async_async(
            self: Task[P, T], args: Sequence[object] | None, kwargs: Mapping[str, object] | None, options: SendOptions
        ) -> AsyncResult[T]: ...

    @takes_send_options  # type: ignore[misc]  # the overloads above give the return type
    async def apply_async_async(
        self, args: Sequence[object] | None, kwargs: Mapping[str, object] | None, options: SendOptions
    ) -> AsyncResult[R]:
        """``apply_async`` for asyncio code: sends without blocking the event loop."""
        import asyncio  # imported on use: it adds ~25 ms to every start-up

        return cast("AsyncResult[R]", await asyncio.to_thread(self._send, args, kwargs, options))

    if TYPE_CHECKING:

        @overload
        @takes_send_options
        def apply_async(
            self: Task[P, Coroutine[Any, Any, T]],
            args: Sequence[object] | None,
            kwargs: Mapping[str, object] | None,
            options: SendOptions,
        ) -> AsyncResult[T]: ...

        @overload
        @takes_send_options
        def apply_async(
            self: Task[P, T], args: Sequence[object] | None, kwargs: Mapping[str, object] | None, options: SendOptions
        ) -> AsyncResult[T]: ...

    @takes_send_options  # type: ignore[misc]  # the overloads above give the return type
    def apply_async(
        self, args: Sequence[object] | None, kwargs: Mapping[str, object] | None, options: SendOptions
    ) -> AsyncResult[R]:
        """Send the task with these arguments and options: ``countdown``, ``eta``, ``expires``,
        ``queue``, ``priority``, ``task_id``, ``headers``, ``link``, ``link_error``, ...

        The options are :class:`taskq.sending.SendOptions`' fields, with Celery's names; this
        task's own options fill in those left unset.
        """
        return cast("AsyncResult[R]", self._send(args, kwargs, options))

    def check_arguments(self, args: Sequence[object], kwargs: Mapping[str, object], *, partial: bool = False) -> None:
        """Raise ``TypeError`` when the function cannot take these arguments (with
        ``partial``, when it cannot take them as the first of its arguments: a signature
        may be given the rest later). Does nothing when the task has ``typing=False``."""
        if not self.typing:
            return
        parameters = self._parameters
        if parameters is None:
            try:
                parameters = inspect.signature(self.fn)
            except (TypeError, ValueError):  # a callable with no signature to read: not checked
                self.typing = False
                return
            kept = list(parameters.parameters.values())[1 if self.bind else 0 :]
            # shown without annotations, which are text under `from __future__ import annotations`
            parameters = parameters.replace(
                parameters=[parameter.replace(annotation=inspect.Parameter.empty) for parameter in kept],
                return_annotation=inspect.Signature.empty,
            )
            self._parameters = parameters
        try:
            if partial:
                parameters.bind_partial(*args, **kwargs)
            else:
                parameters.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}{parameters} cannot take {_call_text(args, kwargs)}: {exc}") from None

    def _send(
        self, args: Sequence[object] | None, kwargs: Mapping[str, object] | None, options: SendOptions
    ) -> AsyncResult[object]:
        self.check_arguments(args or (), kwargs or {})
        if self.app.conf["task_always_eager"]:
            return self.apply(args, kwargs, task_id=options.task_id, link=options.link, link_error=options.link_error)
        return send(self.app, self.name, args, kwargs, options, cast("Task[..., object]", self))

    def apply(
        self,
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        *,
        task_id: str | None = None,
        retries: int = 0,
        throw: bool | None = None,
        link: Signature | Sequence[Signature] | None = None,
        link_error: Signature | Sequence[Signature] | None = None,
        **options: object,
    ) -> EagerResult[R]:
        """Run the task here and now, with retries and errors handled as a worker would."""
        from taskq.worker.trace import trace_eager

        return cast(
            "EagerResult[R]",
            trace_eager(
                self,
                list(args or ()),
                dict(kwargs or {}),
                task_id=task_id or new_id(),
                retries=retries,
                throw=bool(self.app.conf["task_eager_propagates"]) if throw is None else throw,
                link=link,
                link_error=link_error,
            ),
        )

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Mapping[str, object] | object = None,
        **_: object,
    ) -> None:
        """Record a state of the task ``task_id`` (the running one by default): a custom one
        such as ``"PROGRESS"``, with ``meta``. ``AsyncResult.state`` and ``.info`` show them
        until the task ends, whose outcome replaces them. Does nothing when results are
        disabled (``result_backend = "disabled"`` or ``ignore_result``)."""
        if not state or not isinstance(state, str):
            raise ValueError(f"update_state() needs a state name, such as 'PROGRESS', not {state!r}")
        request = self.request
        task_id = task_id or request.id
        if not task_id:
            raise ValueError("update_state() outside a running task needs task_id=")
        if not self.app.has_backend or (task_id == request.id and self.ignore_result):
            return
        self.app.backend.store_result(task_id, meta, state)

    # ---- Signatures and results --------------------------------------------------------

    def signature(
        self,
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        **options: object,
    ) -> Signature:
        from taskq.canvas import Signature

        return Signature(self.name, args, kwargs, options, app=self.app)

    def s(self, *args: object, **kwargs: object) -> Signature:
        """A signature with these arguments (a result passed in is prepended): ``TypeError``
        when the function could not take them even so (too many, or an unknown keyword)."""
        self.check_arguments(args, kwargs, partial=True)
        return self.signature(args, kwargs)

    def si(self, *args: object, **kwargs: object) -> Signature:
        """An immutable signature: the parent's result is not passed in, so the arguments
        must be all the function takes (``TypeError`` otherwise)."""
        self.check_arguments(args, kwargs)
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[object]) -> Signature:
        """One task that calls this one for each item of ``it`` (``celery.map``); its result
        is the list of theirs."""
        from taskq.builtin_tasks import MAP
        from taskq.canvas import Signature

        return Signature(MAP, (), {"task": self.s(), "it": list(it)}, immutable=True, subtask_type="xmap", app=self.app)

    def starmap(self, it: Iterable[Iterable[object]]) -> Signature:
        """One task that calls this one with each item of ``it`` as its arguments (``celery.starmap``)."""
        from taskq.builtin_tasks import STARMAP
        from taskq.canvas import Signature

        items = [list(item) for item in it]
        return Signature(
            STARMAP, (), {"task": self.s(), "it": items}, immutable=True, subtask_type="xstarmap", app=self.app
        )

    def chunks(self, it: Iterable[Iterable[object]], n: int) -> chunks:
        """The calls ``it`` (each item the arguments of one) split into tasks of ``n`` calls
        each: ``.apply_async()`` sends them as a group, whose result is a list per chunk."""
        from taskq.canvas import chunks

        return chunks(self.s(), it, n, app=self.app)

    @overload
    def AsyncResult(self: Task[P, Coroutine[Any, Any, T]], task_id: str) -> AsyncResult[T]: ...

    @overload
    def AsyncResult(self: Task[P, T], task_id: str) -> AsyncResult[T]: ...

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        from taskq.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.name)

    # ---- Retrying ------------------------------------------------------------------------

    def retry(
        self,
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: object = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: object,
    ) -> Retry:
        """Send this task again, later; raises :class:`Retry` to end this run.

        With ``throw=False`` the :class:`Retry` signal is returned instead of raised.

        When the task has used up its retries, re-raises ``exc`` (or raises
        :class:`MaxRetriesExceededError` when no ``exc`` is given).
        """
        request = self.request
        if request.called_directly:
            if exc is not None:
                raise exc
            raise RuntimeError(f"{self.name}.retry() called outside a worker or apply()")
        limit = max_retries
        if limit is None:
            limit = cast("int | None", self.retry_kwargs.get("max_retries", self.max_retries))
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(f"{self.name}[{request.id}] used all {limit} retries (args={request.args!r})")
        if countdown is None and eta is None:
            countdown = self.default_retry_delay if self.default_retry_delay is not None else 180.0
        call_args = request.args if args is None else args
        call_kwargs = request.kwargs if kwargs is None else kwargs
        when = countdown if countdown is not None else None
        if request.is_eager:
            # Eager mode has no broker: the tracer re-runs the task after a raised signal;
            # with throw=False the retry runs here, now, and the signal is returned.
            if throw:
                raise Retry(exc=exc, when=when)
            self.apply(call_args, call_kwargs, task_id=request.id, retries=request.retries + 1)
            return Retry(exc=exc, when=when)
        queue = cast("str | None", options.pop("queue", None)) or request.delivery_info.get("queue")
        timelimit = request.timelimit or (None, None)
        resent: dict[str, object] = {
            "task_id": request.id,
            "countdown": countdown,
            "eta": eta,
            "expires": request.expires,
            "retries": request.retries + 1,
            "root_id": request.root_id,
            "parent_id": request.parent_id,
            "group_id": request.group,
            "group_index": request.group_index,
            "queue": queue,
            "time_limit": timelimit[0],
            "soft_time_limit": timelimit[1],
            "ignore_result": request.ignore_result,
            "callbacks": request.callbacks,
            "errbacks": request.errbacks,
            "chain": request.chain,
            "chord": request.chord,
            "stamps": request.stamps,
        }
        clash = sorted(resent.keys() & options.keys())
        if clash:
            raise TypeError(f"retry() got option(s) it sets itself: {', '.join(clash)}; leave them out")
        again = send_options("retry", {**resent, **options})
        send(self.app, self.name, call_args, call_kwargs, again)
        signal = Retry(exc=exc, when=when)
        if throw:
            raise signal
        return signal

    def replace(self, sig: Mapping[str, object]) -> NoReturn:
        """End this run, and send ``sig`` (a task, a chain, a group or a chord) in its place.

        The replacement's result is this task's result, under its id (a group's is the
        list of its members' results); what was to follow this task follows it instead:
        the rest of its chain, its callbacks and errbacks, its place in a group or a chord's
        header. Raises :class:`~taskq.errors.Ignore`, so this run stores nothing: write
        ``raise self.replace(sig)`` or ``return self.replace(sig)``.
        """
        from taskq.canvas import replace_task
        from taskq.errors import Ignore

        request = self.request
        if request.called_directly or request.is_eager or not request.id:
            raise RuntimeError(f"{self.name}.replace() is for a task a worker runs, not a direct call or apply()")
        replace_task(self.app, sig, request)
        raise Ignore()

    def backoff_for(self, retries: int) -> float:
        """Countdown for an automatic retry after ``retries`` earlier ones."""
        if not self.retry_backoff:
            delay = self.default_retry_delay if self.default_retry_delay is not None else 180.0
            return float(cast(float, self.retry_kwargs.get("countdown", delay)))  # 0 means at once
        factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        return backoff_delay(retries, factor, self.retry_backoff_max, self.retry_jitter)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"


__all__ = ["HANDLERS", "TASK_OPTIONS", "Context", "ExceptionInfo", "Task", "backoff_delay"]
