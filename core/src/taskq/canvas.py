"""The canvas: signatures, and the workflows built from them (chain, group, chord).

A :class:`Signature` is a ``dict`` with Celery's keys (``task``, ``args``, ``kwargs``,
``options``, ``subtask_type``, ``immutable``, ``chord_size``), so it travels inside
protocol 2 messages (``link``, ``link_error``, ``chain``, ``chord``) and Celery reads it.
Workflows are signatures too, with Celery's ``subtask_type`` ("chain", "group",
"chord") and their parts in ``kwargs``, so a worker can rebuild one from a message.

* ``chain(a.s(1), b.s(), c.s())`` runs one after another, each given the previous
  result; the first message carries the rest in its ``chain`` field (protocol 2's
  stack, last first), so no coordinator is needed.
* ``group(a.s(i) for i in range(10))`` runs side by side; its :class:`GroupResult` is
  saved in the result backend.
* ``chord(group(...), body.s())`` runs the header group, then ``body`` with the list of
  their results: each header task counts itself done with the backend's atomic chord
  counter, and the last one sends the body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from taskq._ids import new_id
from taskq._protocol import signature_problem
from taskq.drivers.support.connections import mask_url
from taskq.errors import ConfigError, ResultNotEnabledError

if TYPE_CHECKING:
    from taskq.app import App
    from taskq.result import AsyncResult, GroupResult
    from taskq.task import Context


class StampingVisitor:
    """Decides the stamps of each part of a workflow, for :meth:`Signature.stamp`.

    Subclass it and define :meth:`on_signature` (and any other method): each is called
    with the part being stamped and the stamps given so far, and returns the stamps to add
    (a mapping of stamp names to values). The stamps a workflow's ``on_*_start`` returns go
    to all of its tasks. As Celery's ``celery.canvas.StampingVisitor``.
    """

    def on_signature(self, sig: Signature, **headers: object) -> Mapping[str, object]:
        """Stamps for one task."""
        raise NotImplementedError(f"{type(self).__name__} must define on_signature(self, sig, **headers)")

    def on_group_start(self, group: group, **headers: object) -> Mapping[str, object]:
        """Stamps for every task of ``group``."""
        return {}

    def on_group_end(self, group: group, **headers: object) -> None:
        """``group`` and its tasks are stamped."""

    def on_chain_start(self, chain: chain, **headers: object) -> Mapping[str, object]:
        """Stamps for every step of ``chain``."""
        return {}

    def on_chain_end(self, chain: chain, **headers: object) -> None:
        """``chain`` and its steps are stamped."""

    def on_chord_header_start(self, sig: chord, **headers: object) -> Mapping[str, object]:
        """Stamps for the chord's header tasks (and its body); by default the header group's."""
        return self.on_group_start(sig.header, **headers)

    def on_chord_header_end(self, sig: chord, **headers: object) -> None:
        """The chord's header is stamped."""
        self.on_group_end(sig.header, **headers)

    def on_chord_body(self, sig: chord, **headers: object) -> Mapping[str, object]:
        """Stamps for the chord's body only."""
        return {}

    def on_callback(self, callback: Signature, **headers: object) -> Mapping[str, object]:
        """Stamps for a callback (``link``) of a stamped part."""
        return {}

    def on_errback(self, errback: Signature, **headers: object) -> Mapping[str, object]:
        """Stamps for an errback (``link_error``) of a stamped part."""
        return {}


#: The options that hold a signature's stamps: the names, then each stamp under its name.
STAMPED_HEADERS = "stamped_headers"


def _merge_stamps(
    into: dict[str, object], stamps: Mapping[str, object], append: bool, *, keep: bool = False
) -> dict[str, object]:
    """``stamps`` merged into ``into`` (in place): a stamp of a name already there replaces
    it (or, with ``keep``, is ignored), or with ``append`` both values are kept in a list."""
    for name, value in stamps.items():
        if name not in into:
            into[name] = value
        elif append:
            old = into[name]
            into[name] = [*(old if isinstance(old, list) else [old]), *(value if isinstance(value, list) else [value])]
        elif not keep:
            into[name] = value
    return into


def _check_stamp_names(stamps: Mapping[str, object], whose: str) -> None:
    from taskq.sending import SEND_OPTIONS

    for name in stamps:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{whose}: a stamp's name must be non-empty text, not {name!r:.80}")
        if name in SEND_OPTIONS or name in _NOT_STAMP_NAMES:
            raise ValueError(
                f"{whose}: cannot stamp {name!r}: it names a sending option, and a signature keeps its stamps "
                f"among its options; choose another name"
            )


def _with_visitors(
    headers: Mapping[str, object],
    visitor: StampingVisitor | None,
    hook: str,
    part: Signature,
    append_stamps: bool,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """``headers`` with the stamps ``visitor.<hook>(part, **(extra or headers))`` returns
    added (a given stamp wins over the visitor's of the same name)."""
    given = dict(headers)
    if visitor is not None:
        found = dict(getattr(visitor, hook)(part, **(headers if extra is None else extra)) or {})
        _check_stamp_names(found, f"{type(visitor).__name__}.{hook}()")
        _merge_stamps(given, found, append_stamps, keep=True)
    return given


# Option names a stamp cannot take besides the sending options.
_NOT_STAMP_NAMES = frozenset({STAMPED_HEADERS, "immutable", "subtask_type", "chord_size"})


class Signature(dict[str, object]):
    """One task call: name, arguments and sending options."""

    def __init__(
        self,
        task: str,
        args: Sequence[object] | None = None,
        kwargs: Mapping[str, object] | None = None,
        options: Mapping[str, object] | None = None,
        *,
        immutable: bool | None = None,
        subtask_type: str | None = None,
        app: App | None = None,
    ) -> None:
        opts = dict(options or {})
        is_immutable = bool(opts.pop("immutable", False)) if immutable is None else immutable
        super().__init__(
            task=task,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options=opts,
            subtask_type=subtask_type,
            immutable=is_immutable,
            chord_size=None,
        )
        self._app = app

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> Signature:
        """Rebuild a signature (or a workflow) that travelled in a message."""
        if isinstance(data, Signature):
            return data
        if not isinstance(data, Mapping):
            raise TypeError(f"a signature is a mapping with a 'task' name, not {type(data).__name__}: {data!r:.200}")
        kind = data.get("subtask_type")
        maker = _WORKFLOWS.get(str(kind)) if kind else None
        if maker is not None:
            return maker(data, app)
        problem = signature_problem(data)
        if problem is not None:
            raise TypeError(f"not a signature ({problem})")
        task, args, kwargs, options = data.get("task"), data.get("args"), data.get("kwargs"), data.get("options")
        sig = cls(
            cast(str, task),
            cast("Sequence[object]", args or ()),
            cast("Mapping[str, object]", kwargs or {}),
            cast("Mapping[str, object]", options or {}),
            immutable=bool(data.get("immutable", False)),
            subtask_type=cast("str | None", kind),
            app=app,
        )
        sig["chord_size"] = data.get("chord_size")
        return sig

    @property
    def task(self) -> str:
        return str(self["task"])

    @property
    def args(self) -> list[object]:
        return cast("list[object]", self["args"])

    @property
    def kwargs(self) -> dict[str, object]:
        return cast("dict[str, object]", self["kwargs"])

    @property
    def options(self) -> dict[str, object]:
        return cast("dict[str, object]", self["options"])

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def app(self) -> App:
        if self._app is None:
            from taskq.app import current_app

            self._app = current_app()
        return self._app

    def clone(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> Signature:
        """A copy with ``args`` prepended (unless immutable) and kwargs/options merged."""
        new_args = self.args if self.immutable else [*args, *self.args]
        copy = Signature(
            self.task,
            new_args,
            {**self.kwargs, **(kwargs or {})},
            _merged_options(self.options, options),
            immutable=self.immutable,
            subtask_type=cast("str | None", self["subtask_type"]),
            app=self._app,
        )
        copy["chord_size"] = self.get("chord_size")
        return copy

    def freeze(self) -> str:
        """Fix this call's task id now (so results can be known before sending); return it."""
        task_id = self.options.get("task_id")
        if not task_id:
            task_id = new_id()
            self.options["task_id"] = task_id
        return str(task_id)

    def __or__(self, other: Signature) -> chain:  # type: ignore[override]  # | chains tasks, as in Celery
        return chain(self, other)

    def set(self, **options: object) -> Signature:
        """Merge sending options in place; returns the signature."""
        self.options.update(options)
        return self

    def link(self, callback: Signature) -> Signature:
        """Run ``callback`` with this task's result when it succeeds."""
        links = cast("list[object]", self.options.setdefault("link", []))
        links.append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Run ``errback`` when this fails (see docs/canvas.md for how it is called); returns ``errback``."""
        links = cast("list[object]", self.options.setdefault("link_error", []))
        links.append(errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """``link_error``, returning this signature, so that it reads as a chain:
        ``(add.s(1) | mul.s(2)).on_error(report.s()).delay()``."""
        self.link_error(errback)
        return self

    # ---- Stamping -------------------------------------------------------------------

    @property
    def stamps(self) -> dict[str, object]:
        """This signature's stamps by name (empty when it has none)."""
        options = self.options
        return {name: options.get(name) for name in cast("list[str]", options.get(STAMPED_HEADERS) or [])}

    def _set_stamps(self, stamps: Mapping[str, object]) -> None:
        options = self.options
        names = [*cast("list[str]", options.get(STAMPED_HEADERS) or [])]
        for name, value in stamps.items():
            if name not in names:
                names.append(name)
            options[name] = value
        options[STAMPED_HEADERS] = names

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: object
    ) -> Signature:
        """Stamp this call (and its callbacks and errbacks) with ``headers``, and with what
        ``visitor`` returns for it; returns the signature.

        Stamps travel in the message (Celery's ``stamped_headers`` and ``stamps`` headers),
        the task reads them as ``self.request.stamps``, and ``app.control.revoke_by_stamped_headers``
        revokes by them. A stamp of a name the call has already replaces the old one, unless
        ``append_stamps``: then the values are kept in a list. A workflow stamps each of its
        tasks. See docs/canvas.md, "Stamping".
        """
        _check_stamp_names(headers, "stamp()")
        self.stamp_links(visitor, append_stamps, **headers)
        given = _with_visitors(headers, visitor, "on_signature", self, append_stamps)
        self._set_stamps(_merge_stamps(self.stamps, given, append_stamps))
        return self

    def stamp_links(self, visitor: StampingVisitor | None, append_stamps: bool = False, **headers: object) -> None:
        """Stamp this call's callbacks (``link``) and errbacks (``link_error``) with ``headers``
        and what ``visitor.on_callback`` / ``on_errback`` return; not with this call's own stamps."""
        for option, hook in (("link", "on_callback"), ("link_error", "on_errback")):
            links = self.options.get(option)
            if not links:
                continue
            listed = [_as_signature(cast("Mapping[str, object]", link), self._app) for link in _listed(links)]
            for link in listed:
                link.stamp(visitor, append_stamps, **_with_visitors(headers, visitor, hook, link, append_stamps))
            self.options[option] = listed

    def apply_async(
        self,
        args: Sequence[object] = (),
        kwargs: Mapping[str, object] | None = None,
        **options: object,
    ) -> AsyncResult[object]:
        """Send the call (``args`` prepended unless immutable)."""
        sig = self.clone(args, kwargs, **options) if (args or kwargs or options) else self
        return sig.app.send_task(sig.task, sig.args, sig.kwargs, **cast("dict[str, Any]", sig.options))

    def delay(self, *args: object, **kwargs: object) -> AsyncResult[object]:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"


def _merged_options(options: Mapping[str, object], more: Mapping[str, object]) -> dict[str, object]:
    """``more`` over ``options``; the stamps of both are kept (their names listed once)."""
    merged = {**options, **more}
    if STAMPED_HEADERS in options and STAMPED_HEADERS in more:
        names = cast("list[str]", options[STAMPED_HEADERS] or [])
        merged[STAMPED_HEADERS] = [
            *names,
            *(n for n in cast("list[str]", more[STAMPED_HEADERS] or []) if n not in names),
        ]
    return merged


def _app_of(signatures: Iterable[Signature]) -> App | None:
    """The app of the first signature that has one: a workflow built from ``add.s()`` of an
    app that is not the current one sends, saves and reads on that app."""
    for sig in signatures:
        if sig._app is not None:
            return sig._app
    return None


def _as_signature(item: Mapping[str, object], app: App | None) -> Signature:
    return item if isinstance(item, Signature) else Signature.from_dict(item, app)


#: Sending options that make a call a member of a group or a chord's header: they belong to
#: the task whose result is the member's result (a chain's last step, a chord's body).
MEMBERSHIP = ("group_id", "group_index", "chord")


def _membership(options: dict[str, object]) -> dict[str, object]:
    """Take the membership options out of ``options``."""
    return {key: options.pop(key) for key in MEMBERSHIP if key in options}


def _listed(value: object) -> list[object]:
    """A ``link``/``link_error`` option as a list: None, one signature, or several."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    return list(cast("Iterable[object]", value))


def _add_errbacks(sig: Signature, errbacks: list[object]) -> None:
    """Attach ``errbacks`` to every task that runs for ``sig``: a chord's header and body,
    a group's members, a chain's steps, or the task itself."""
    if isinstance(sig, chord):  # a header task's failure fails the body, which calls them
        _add_errbacks(sig.body, errbacks)
    elif isinstance(sig, (group, chain)):
        for member in sig.tasks:
            _add_errbacks(member, errbacks)
    else:
        sig.options["link_error"] = [*_listed(sig.options.get("link_error")), *errbacks]


def _collected(flow: Signature, app: App | None) -> Signature:
    """``flow`` made to give one result: a group (or a chain ending in one) inside a group or
    a chord's header becomes a chord whose body (``celery.accumulate``) returns the list of
    its results, so the enclosing group or chord gets that list as this member's result."""
    from taskq.builtin_tasks import ACCUMULATE

    def collect() -> Signature:
        return Signature(ACCUMULATE, (), {"index": 0}, app=app)

    if isinstance(flow, group):
        return chord(flow, collect(), app=app)
    if isinstance(flow, chain) and flow.tasks and isinstance(flow.tasks[-1], group):
        collected = chain(*flow.tasks[:-1], chord(flow.tasks[-1], collect(), app=app), app=app)
        collected.options.update(flow.options)
        return collected
    return flow


def _needs_collecting(flow: Signature) -> bool:
    """Whether :func:`_collected` makes ``flow`` a chord of its own (under a new id)."""
    return isinstance(flow, group) or (
        isinstance(flow, chain) and bool(flow.tasks) and isinstance(flow.tasks[-1], group)
    )


def _require_collecting(app: App, members: Sequence[Signature]) -> None:
    """Before anything is sent: members made chords need a backend that can run them."""
    if any(_has_chord(member) for member in members):
        if not app.has_backend:
            raise ResultNotEnabledError(
                "a group inside a group or a chord's header needs a result backend to collect its results; "
                "set result_backend"
            )
        _require_chords(app)


def _stamp_workflow(
    flow: Signature,
    parts: Sequence[Signature],
    visitor: StampingVisitor | None,
    append_stamps: bool,
    headers: Mapping[str, object],
    start: str,
    end: str,
) -> dict[str, object]:
    """Stamp each of ``parts`` with ``headers`` and what ``visitor``'s ``start`` method
    returns for ``flow``; then call its ``end`` method. Returns the stamps given to the parts."""
    _check_stamp_names(headers, "stamp()")
    given = _with_visitors(headers, visitor, start, flow, append_stamps)
    flow.stamp_links(visitor, append_stamps, **given)
    for part in parts:
        part.stamp(visitor, append_stamps, **given)
    if visitor is not None:
        getattr(visitor, end)(flow, **given)
    return given


class chain(Signature):  # noqa: N801 - Celery's name, used like a function
    """Tasks run one after another, each given the previous one's result."""

    def __init__(self, *tasks: Mapping[str, object] | Iterable[Mapping[str, object]], app: App | None = None) -> None:
        items: list[Mapping[str, object]] = []
        for task in tasks:
            if isinstance(task, Mapping):
                items.append(task)
            else:
                items.extend(task)
        flat: list[Signature] = []
        for item in items:
            sig = _as_signature(item, app)
            flat.extend(sig.tasks if isinstance(sig, chain) else [sig])
        super().__init__("celery.chain", (), {"tasks": flat}, {}, subtask_type="chain", app=app or _app_of(flat))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> chain:
        kwargs = cast("Mapping[str, object]", data.get("kwargs") or {})
        new = cls(*cast("list[Mapping[str, object]]", kwargs.get("tasks") or []), app=app)
        new.options.update(cast("Mapping[str, object]", data.get("options") or {}))
        return new

    @property
    def tasks(self) -> list[Signature]:
        return cast("list[Signature]", self.kwargs["tasks"])

    def freeze(self) -> str:
        """Fix every step's id now; the chain's result is its last step's, whose id is returned."""
        if not self.tasks:
            raise ValueError("an empty chain has nothing to run")
        ids = [step.freeze() for step in self.tasks]
        return ids[-1]

    def __or__(self, other: Signature) -> chain:  # type: ignore[override]  # | chains tasks, as in Celery
        return chain(*self.tasks, other, app=self._app)

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: object) -> chain:
        """Stamp every step (see :meth:`Signature.stamp`); ``visitor.on_chain_start`` adds stamps for all."""
        _stamp_workflow(self, self.tasks, visitor, append_stamps, headers, "on_chain_start", "on_chain_end")
        return self

    def clone(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> chain:
        tasks = [t.clone() for t in self.tasks]
        if tasks and (args or kwargs):
            tasks[0] = tasks[0].clone(args, kwargs)
        new = chain(*tasks, app=self._app)
        new.options.update({**self.options, **options})
        return new

    def apply_async(  # type: ignore[override]  # a chain ending in a group returns its GroupResult
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> AsyncResult[object] | GroupResult:
        """Send the first task, carrying the rest; returns the last step's result (a
        :class:`GroupResult` when the chain ends in a group)."""
        from taskq.result import AsyncResult, GroupResult

        if not self.tasks:
            raise ValueError("an empty chain has nothing to run")
        steps = [t.clone() for t in self.tasks]
        steps[0] = steps[0].clone(args, kwargs)
        # A group followed by more steps is a chord: its results feed the next step.
        merged: list[Signature] = []
        for step in steps:
            if merged and isinstance(merged[-1], group):
                merged[-1] = chord(merged[-1], step, app=self._app)
            else:
                merged.append(step)
        steps = merged
        ids = [step.freeze() for step in steps]
        app = self.app
        # The header of each chord step, its ids fixed now (a member that is a group is sent
        # as a chord of its own, under an id not known here: that header is not shown).
        headers: dict[str, GroupResult | None] = {}
        for step, task_id in zip(steps, ids, strict=True):
            if isinstance(step, chord) and not any(_needs_collecting(member) for member in step.header.tasks):
                group_id = step.header.freeze()
                members = [app.AsyncResult(member.freeze()) for member in step.header.tasks]
                headers[task_id] = GroupResult(group_id, members, app=app)
        if app.has_backend and any(_has_chord(step) for step in steps[1:]):
            _require_chords(app)  # here, not in the worker that would send that step
        options = {**self.options, **options}
        # The chain's result is its last step's: that step is the member of an enclosing
        # group or chord header, and the first message must not count as one.
        membership = _membership(options)
        if membership and isinstance(steps[-1], group):
            # the chain is a member: its last step's result must be one value, the list
            steps[-1] = _collected(steps[-1], self._app)
            ids[-1] = steps[-1].freeze()
            _require_collecting(app, steps[-1:])
        steps[-1].options.update(membership)
        # An errback of the chain is every step's: whichever step fails calls it (once).
        errbacks = _listed(options.pop("link_error", None))
        if errbacks:
            for step in steps:
                _add_errbacks(step, errbacks)
        root_id = cast("str | None", options.pop("root_id", None)) or ids[0]
        for step in steps[1:]:
            step.options.setdefault("root_id", root_id)
        if _records_shape(app, options):
            _record_shape(app, ids[-1], {"kind": "chain", "steps": [_shape(step) for step in steps]})
        first, rest = steps[0], steps[1:]
        # What was to follow (a replaced task's chain) comes after this chain's own steps.
        inherited = cast("list[Mapping[str, object]]", options.pop("chain", None) or [])
        extra: dict[str, object] = {**options, "root_id": root_id}
        stack = [*inherited, *(dict(step) for step in reversed(rest))]
        if stack:
            extra["chain"] = stack
        if not rest:
            extra.update(membership)
        with _sending_parts():
            first.apply_async((), None, **extra)
        parent: AsyncResult[object] | GroupResult | None = None
        for step, task_id in zip(steps, ids, strict=True):
            if isinstance(step, group):
                members = [app.AsyncResult(member.freeze()) for member in step.tasks]
                result: AsyncResult[object] | GroupResult = GroupResult(task_id, members, app=app)
            else:
                if isinstance(step, chord) and headers.get(task_id) is not None:
                    # as Celery's: a chord step's result has its header's GroupResult as parent
                    header = cast("GroupResult", headers[task_id])
                    header.parent = parent
                    parent = header
                result = AsyncResult(task_id, app=app)
            result.parent = parent
            parent = result
        assert parent is not None
        return parent


class group(Signature):  # noqa: N801 - Celery's name, used like a function
    """Tasks run side by side; the result is a :class:`taskq.result.GroupResult`."""

    def __init__(self, *tasks: Mapping[str, object] | Iterable[Mapping[str, object]], app: App | None = None) -> None:
        items: list[Mapping[str, object]] = []
        for task in tasks:
            if isinstance(task, Mapping):
                items.append(task)
            else:
                items.extend(task)
        sigs = [_as_signature(item, app) for item in items]
        super().__init__("celery.group", (), {"tasks": sigs}, {}, subtask_type="group", app=app or _app_of(sigs))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> group:
        kwargs = cast("Mapping[str, object]", data.get("kwargs") or {})
        new = cls(cast("list[Mapping[str, object]]", kwargs.get("tasks") or []), app=app)
        new.options.update(cast("Mapping[str, object]", data.get("options") or {}))
        return new

    @property
    def tasks(self) -> list[Signature]:
        return cast("list[Signature]", self.kwargs["tasks"])

    def __len__(self) -> int:
        return len(self.tasks)

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: object) -> group:
        """Stamp every member (see :meth:`Signature.stamp`); ``visitor.on_group_start`` adds stamps for all."""
        _stamp_workflow(self, self.tasks, visitor, append_stamps, headers, "on_group_start", "on_group_end")
        return self

    def freeze(self) -> str:
        """Fix the group's id and every member's now; return the group's id."""
        for member in self.tasks:
            member.freeze()
        return super().freeze()

    def clone(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> group:
        new = group([t.clone(args, kwargs) for t in self.tasks], app=self._app)
        new.options.update({**self.options, **options})
        return new

    def apply_async(  # type: ignore[override]  # returns the GroupResult, as Celery's does
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> GroupResult:
        """Send every task with the group's id; save and return the :class:`GroupResult`."""
        from taskq.result import GroupResult

        app = self.app
        # Its own id (frozen by a chain, say), else a new one: the caller's signature is not
        # frozen here, so that sending it twice makes two groups, not one id twice.
        group_id = (
            cast("str | None", options.pop("group_id", None))
            or cast("str | None", self.options.get("task_id"))
            or new_id()
        )
        parts = [t.clone(args, kwargs) for t in self.tasks]
        shape: dict[str, object] | None = None
        if _records_shape(app, options):
            shape = {"kind": "group", "id": group_id, "members": [_shape(part) for part in parts]}
        members = [_collected(part, self._app) for part in parts]
        _require_collecting(app, members)
        ids = [m.freeze() for m in members]
        result = GroupResult(group_id, [app.AsyncResult(i) for i in ids], app=app)
        if app.has_backend:
            result.save()
        if shape is not None:
            _record_shape(app, group_id, shape)
        extra = {**{k: v for k, v in self.options.items() if k != "task_id"}, **options}
        with _sending_parts():
            for index, member in enumerate(members):
                member.apply_async((), None, group_id=group_id, group_index=index, **extra)
        return result

    def delay(self, *args: object, **kwargs: object) -> GroupResult:  # type: ignore[override]
        return self.apply_async(args, kwargs)


class chord(Signature):  # noqa: N801 - Celery's name, used like a function
    """A group (the header) and a task (the body) run with the list of their results."""

    def __init__(
        self,
        header: Mapping[str, object] | Iterable[Mapping[str, object]],
        body: Mapping[str, object] | None = None,
        app: App | None = None,
    ) -> None:
        head = header if isinstance(header, group) else group(cast("Iterable[Mapping[str, object]]", header), app=app)
        tail = _as_signature(body, app) if body is not None else None
        kwargs: dict[str, object] = {"header": head, "body": tail}
        found = app or _app_of([head] if tail is None else [tail, head])
        super().__init__("celery.chord", (), kwargs, {}, subtask_type="chord", app=found)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> chord:
        kwargs = cast("Mapping[str, object]", data.get("kwargs") or {})
        header = Signature.from_dict(cast("Mapping[str, object]", kwargs["header"]), app)
        body = kwargs.get("body")
        new = cls(header, cast("Mapping[str, object] | None", body), app=app)
        new.options.update(cast("Mapping[str, object]", data.get("options") or {}))
        return new

    @property
    def header(self) -> group:
        return cast(group, self.kwargs["header"])

    @property
    def body(self) -> Signature:
        body = self.kwargs["body"]
        if body is None:
            raise ValueError("this chord has no body: chord(header, body) or chord(header)(body)")
        return cast(Signature, body)

    def __call__(self, body: Signature) -> AsyncResult[object]:
        return chord(self.header, body, app=self._app).apply_async()

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: object) -> chord:
        """Stamp every header task and the body (see :meth:`Signature.stamp`):
        ``visitor.on_chord_header_start`` adds stamps for all, ``on_chord_body`` for the body."""
        given = _stamp_workflow(
            self, self.header.tasks, visitor, append_stamps, headers, "on_chord_header_start", "on_chord_header_end"
        )
        body = self.kwargs["body"]
        if isinstance(body, Signature):
            if visitor is not None:
                extra = dict(visitor.on_chord_body(self, **given) or {})
                _check_stamp_names(extra, f"{type(visitor).__name__}.on_chord_body()")
                given = _merge_stamps(dict(given), extra, append_stamps)
            body.stamp(visitor, append_stamps, **given)
        return self

    def freeze(self) -> str:
        return self.body.freeze()

    def clone(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> chord:
        body = self.kwargs["body"]
        new = chord(self.header.clone(args, kwargs), cast(Signature, body).clone() if body else None, app=self._app)
        new.options.update({**self.options, **options})
        return new

    def apply_async(
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> AsyncResult[object]:
        """Send the header; the last header task to finish sends the body."""
        from taskq.result import AsyncResult, GroupResult

        app = self.app
        if not app.has_backend:
            raise ResultNotEnabledError(
                "a chord needs a result backend to collect its header's results; set result_backend"
            )
        _require_chords(app)
        body = self.body.clone()
        body_id = body.freeze()
        options = {**self.options, **options}
        options.pop("task_id", None)
        # The chord's errbacks are its body's: called when the body fails, or when a header
        # task fails (the body then fails with ChordError).
        errbacks = _listed(options.pop("link_error", None))
        if errbacks:
            _add_errbacks(body, errbacks)
        # This chord's result is its body's: the body is the member of an enclosing group
        # or chord header; the header is a group of its own.
        body.options.update(_membership(options))
        for key in ("root_id", "parent_id"):
            if key in options:
                body.options.setdefault(key, options[key])
        chain_rest = options.pop("chain", None)
        if chain_rest:
            body.options["chain"] = chain_rest
        parts = [t.clone(args, kwargs) for t in self.header.tasks]
        group_id = cast("str | None", self.header.options.get("task_id")) or new_id()
        if _records_shape(app, options):
            header = {"kind": "group", "id": group_id, "members": [_shape(part) for part in parts]}
            _record_shape(app, body_id, {"kind": "chord", "header": header, "body": _shape(body)})
        members = [_collected(part, self._app) for part in parts]
        body["chord_size"] = len(members)
        ids = [m.freeze() for m in members]
        header_result = GroupResult(group_id, [app.AsyncResult(i) for i in ids], app=app)
        header_result.save()
        app.backend.set_chord_size(group_id, len(members))  # where Celery's workers read it (Redis: <group>.s)
        with _sending_parts():
            if not members:
                body.apply_async(([],))
            for index, member in enumerate(members):
                member.apply_async((), None, group_id=group_id, group_index=index, chord=dict(body), **options)
        result: AsyncResult[object] = AsyncResult(body_id, app=app)
        result.parent = header_result
        return result


# ---- Recording a workflow's shape (taskq graph) ---------------------------------------

# True while the parts of a workflow are being sent: they are recorded as part of it.
_SENDING_PARTS: ContextVar[bool] = ContextVar("taskq_sending_workflow_parts", default=False)


def _records_shape(app: App, options: Mapping[str, object]) -> bool:
    """Whether this send starts a workflow, whose shape is then recorded for ``taskq graph``:
    not a part of one being sent, nor a part a worker sends on (those carry ``parent_id``)."""
    return not _SENDING_PARTS.get() and "parent_id" not in options and app.has_backend


@contextmanager
def _sending_parts() -> Iterator[None]:
    """Send a workflow's parts: published together once all are made, or none (see
    :func:`taskq.sending.publishing_together`), and recorded as parts of it."""
    from taskq.sending import publishing_together

    token = _SENDING_PARTS.set(True)
    try:
        with publishing_together():
            yield
    finally:
        _SENDING_PARTS.reset(token)


def _record_shape(app: App, result_id: str, tree: dict[str, object]) -> None:
    """Keep ``tree`` in the result backend under the workflow's result id (see ``taskq graph``)."""
    with suppress(NotImplementedError):  # a backend that keeps no shapes (rpc://): taskq graph says so
        app.backend.save_workflow(result_id, tree)


def _shape(flow: Signature) -> dict[str, object]:
    """The shape of ``flow``, about to be sent: its kind, its parts, and the id of each task
    and group, fixed now (frozen) where they were not, so the tasks sent carry them."""
    if isinstance(flow, chain):
        return {"kind": "chain", "steps": [_shape(step) for step in flow.tasks]}
    if isinstance(flow, chord):
        return {"kind": "chord", "header": _shape(flow.header), "body": _shape(flow.body)}
    if isinstance(flow, group):
        return {"kind": "group", "id": flow.freeze(), "members": [_shape(member) for member in flow.tasks]}
    if isinstance(flow, chunks):  # its tasks are made when it is sent: their ids are not known here
        task = cast(Signature, flow.kwargs["task"])
        return {"kind": "chunks", "task": task.task, "items": len(cast("list[object]", flow.kwargs["it"]))}
    return {"kind": "task", "id": flow.freeze(), "task": flow.task}


def _require_chords(app: App) -> None:
    """Refuse a chord, at send, on a result backend that cannot count its header's results."""
    if app.backend.capabilities.chord_counter:
        return
    where = mask_url(str(app.backend_url))
    raise ConfigError(
        f"the result backend {where!r} cannot run a chord: it has no atomic counter for "
        f"its header's results (results over rpc:// go to one client only). Backends installed here "
        f"that can: {', '.join(_chord_backends(app)) or 'none'} (set result_backend to one of them)"
    )


def _has_chord(sig: Signature) -> bool:
    if isinstance(sig, chord):
        return True
    return isinstance(sig, (group, chain)) and any(_has_chord(member) for member in sig.tasks)


class chunks(Signature):  # noqa: N801 - Celery's name, used like a function
    """A task called once per item of ``it`` (the item its arguments), in tasks of ``n``
    calls each: sent as a group of ``celery.starmap`` tasks (:meth:`group`)."""

    def __init__(
        self, task: Mapping[str, object], it: Iterable[Iterable[object]], n: int, app: App | None = None
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"chunks of {n!r} calls: give a whole number of calls per chunk, 1 or more")
        items = [list(item) for item in it]
        kwargs = {"task": _as_signature(task, app), "it": items, "n": n}
        super().__init__("celery.chunks", (), kwargs, {}, subtask_type="chunks", app=app)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], app: App | None = None) -> chunks:
        kwargs = cast("Mapping[str, object]", data.get("kwargs") or {})
        task = cast("Mapping[str, object]", kwargs["task"])
        new = cls(task, cast("list[list[object]]", kwargs.get("it") or []), cast(int, kwargs.get("n")), app=app)
        new.options.update(cast("Mapping[str, object]", data.get("options") or {}))
        return new

    def group(self) -> group:
        """The chunks as a group of ``celery.starmap`` tasks, one per chunk, in order."""
        from taskq.builtin_tasks import STARMAP

        task = cast(Signature, self.kwargs["task"])
        items = cast("list[list[object]]", self.kwargs["it"])
        n = cast(int, self.kwargs["n"])
        parts = [
            Signature(STARMAP, (), {"task": task, "it": items[start : start + n]}, immutable=True, app=self._app)
            for start in range(0, len(items), n)
        ]
        return group(parts, app=self._app)

    def apply_async(  # type: ignore[override]  # a GroupResult, as Celery's chunks gives
        self, args: Sequence[object] = (), kwargs: Mapping[str, object] | None = None, **options: object
    ) -> GroupResult:
        return self.group().apply_async((), None, **{**self.options, **options})

    def delay(self, *args: object, **kwargs: object) -> GroupResult:  # type: ignore[override]
        return self.apply_async(args, kwargs)


def replace_task(app: App, replacement: Mapping[str, object], request: Context) -> None:
    """Send ``replacement`` in place of the running task ``request`` (``Task.replace``).

    Its result is the task's own, under the task's id: a group is made a chord whose body
    collects its results. What was to follow the task follows the replacement: the rest of
    its chain, its callbacks and errbacks, its place in a group or a chord's header, and
    the client waiting for it over rpc://.
    """
    flow = _collected(_as_signature(replacement, app).clone(), app)
    final = _result_task(flow)
    assert request.id is not None
    final.options["task_id"] = request.id
    if request.callbacks:
        final.options["callbacks"] = list(request.callbacks)
    if request.errbacks:
        final.options["errbacks"] = list(request.errbacks)
    if request.reply_to:
        final.options["reply_to"] = request.reply_to
    options: dict[str, object] = {"root_id": request.root_id, "parent_id": request.id}
    if request.chain:
        options["chain"] = list(request.chain)
    if request.group:
        options["group_id"] = request.group
        options["group_index"] = request.group_index
    if request.chord:
        options["chord"] = request.chord
    flow.apply_async((), None, **options)


def _result_task(flow: Signature) -> Signature:
    """The task whose result is ``flow``'s: a chain's last step's, a chord's body's."""
    if isinstance(flow, chain):
        return _result_task(flow.tasks[-1])
    if isinstance(flow, chord):
        return _result_task(flow.body)
    return flow


def _chord_backends(app: App) -> list[str]:
    """The URL schemes of the installed result backends that can run a chord."""
    able = []
    for name in sorted(app.plugins.drivers("result_backends")):
        try:
            driver = app.plugins.resolve_driver("result_backends", name)
        except Exception:  # noqa: S112 - a backend that cannot be loaded cannot run one either
            continue
        capabilities = getattr(driver, "capabilities", None)
        if getattr(capabilities, "chord_counter", False):
            able.append(f"{name}://")
    return able


_WORKFLOWS: dict[str, Callable[[Mapping[str, object], App | None], Signature]] = {
    "chain": chain.from_dict,
    "group": group.from_dict,
    "chord": chord.from_dict,
    "chunks": chunks.from_dict,
}


def signature(
    task: str | Mapping[str, object],
    args: Sequence[object] | None = None,
    kwargs: Mapping[str, object] | None = None,
    **options: object,
) -> Signature:
    """A signature by task name, or rebuilt from a dict."""
    if isinstance(task, Mapping):
        return Signature.from_dict(task)
    return Signature(task, args, kwargs, options)


__all__ = ["Signature", "StampingVisitor", "chain", "chord", "chunks", "group", "signature"]
