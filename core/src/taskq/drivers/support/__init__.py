"""What several drivers share, so that no plugin writes it again.

* :mod:`~taskq.drivers.support.envelope`: a message as kombu's JSON envelope and back,
  and the one policy for a message that cannot be decoded (hand the worker
  :func:`~taskq.drivers.support.envelope.undecodable`; it dead-letters it with the reason);
* :mod:`~taskq.drivers.support.connections`: :func:`mask_url` for logs and errors, and
  fork safety: :func:`current_pid` to notice a fork cheaply, :data:`fork_gate` to keep a
  fork from cutting a library call in two, :func:`keep_inherited` for the parent's
  connections a child must never close, :class:`PerProcess` for a client per process;
* :mod:`~taskq.drivers.support.event_messages`: events as Celery's messages (the
  ``celeryev`` exchange, routing keys, transient JSON), and :class:`EventDecoder`, which
  reads them back and leaves out, logged, whatever is not an event;
* :mod:`~taskq.drivers.support.wakeup`: wake-ups between processes that share a store
  which cannot push (an SQLite file, a directory tree);
* :mod:`~taskq.drivers.support.eventlog`: a bounded event log that readers follow by
  position, for a transport whose store cannot broadcast (an SQLite file, a directory tree);
* :mod:`~taskq.drivers.support.mailbox`: :class:`LogMailbox`, remote control's mailbox
  kept in such a log;
* :mod:`~taskq.drivers.support.greenpool`: :class:`GreenPool`, the pool logic a green
  thread library's pool builds on (gevent, eventlet);
* :mod:`~taskq.drivers.support.interrupt`: raising an exception inside another thread's
  running job (soft time limits on thread pools);
* :mod:`~taskq.drivers.support.retrying`: :class:`RetryPolicy`, running an operation again
  after a doubling pause while its store fails it;
* :mod:`~taskq.drivers.support.services`: :class:`ServiceErrors`, a cloud client's failures
  (unreachable, throttled, refused) told as :class:`~taskq.errors.BackendUnavailableError`;
* :mod:`~taskq.drivers.support.waiters`: :class:`ResultWaiters`, one wake-up waiter per
  waiting thread for a result backend on a shared store that cannot push.

Import from the modules; this package's own namespace only lists them.
"""

__all__ = [
    "connections",
    "envelope",
    "event_messages",
    "eventlog",
    "greenpool",
    "interrupt",
    "mailbox",
    "retrying",
    "services",
    "waiters",
    "wakeup",
]
