"""RESP on the wire: commands packed into bytes, replies parsed out of them.

No sockets here: :class:`ReplyParser` reads from a buffer that its subclass
(:class:`taskq_redis._resp.Connection`) fills from its socket. Error replies become
:class:`ResponseError` objects (``NOSCRIPT``: :class:`NoScriptError`), returned, not
raised, so that a pipeline reads every reply before it raises; RESP3 pushes (pub/sub
messages) become :class:`Push` lists.
"""

from __future__ import annotations

from taskq.errors import ConfigError


class RedisConnectionError(ConnectionError):
    """Redis cannot be reached, closed the connection, or spoke something else than RESP."""


class ResponseError(Exception):
    """An error reply from Redis."""


class NoScriptError(ResponseError):
    """``NOSCRIPT``: the server does not know the script (restarted or flushed)."""


class RedisAuthError(ResponseError, ConfigError):
    """Redis refused the credentials (``NOAUTH``, ``WRONGPASS``, an unwanted ``AUTH``).

    A :class:`~taskq.errors.ConfigError`: retrying cannot help, so nothing retries it,
    and the worker and the client report it at once (see ``Client.refused``).
    """


#: How the error replies that mean "these credentials are refused" start.
_AUTH_REPLIES = ("NOAUTH", "WRONGPASS", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH")


class Push(list):  # type: ignore[type-arg]  # the items of a RESP3 push, as parsed
    """Something Redis sent unasked on a RESP3 connection (a pub/sub message or confirmation)."""


def _error(text: str) -> ResponseError:
    if text.startswith("NOSCRIPT"):
        return NoScriptError(text)
    if text.startswith(_AUTH_REPLIES):
        return RedisAuthError(text)
    return ResponseError(text)


def pack(args: tuple[object, ...]) -> bytes:
    """A command in RESP: an array of bulk strings (str as UTF-8, numbers as text)."""
    out = [b"*%d\r\n" % len(args)]
    append = out.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()  # type: ignore[attr-defined]  # a str
        elif kind is bytes:
            data = arg
        elif kind is int or kind is float:
            data = repr(arg).encode()
        elif isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        elif isinstance(arg, str):
            data = str(arg).encode()
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            data = (str(int(arg)) if isinstance(arg, int) else repr(float(arg))).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")
        append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ReplyParser:
    """Parses RESP2 and RESP3 replies from ``_buf`` (from ``_pos`` on), which :meth:`_fill` tops up."""

    _buf: bytes
    _pos: int

    def _fill(self) -> None:
        """Append at least one byte from the connection to ``_buf``, or raise an ``OSError``."""
        raise NotImplementedError

    def _parse(self) -> object:
        while (end := self._buf.find(b"\r\n", self._pos)) < 0:
            self._fill()
        line = self._buf[self._pos : end]
        self._pos = end + 2
        kind = line[:1]
        if kind == b"$":
            size = int(line[1:])
            if size < 0:
                return None
            while len(self._buf) - self._pos < size + 2:
                self._fill()
            start = self._pos
            self._pos = start + size + 2
            return self._buf[start : start + size]
        if kind == b":":
            return int(line[1:])
        if kind == b"*":
            count = int(line[1:])
            if count < 0:
                return None
            return [self._parse() for _ in range(count)]
        if kind == b"+":
            return line[1:]
        if kind == b"-":
            return _error(line[1:].decode("utf-8", "replace"))
        return self._parse_resp3(kind, line)

    def _parse_resp3(self, kind: bytes, line: bytes) -> object:
        """The types only RESP3 has (after ``HELLO 3``)."""
        if kind == b">":
            return Push(self._parse() for _ in range(int(line[1:])))
        if kind == b"_":
            return None
        if kind == b"%":
            return {_hashable(self._parse()): self._parse() for _ in range(int(line[1:]))}
        if kind == b"~":
            return [self._parse() for _ in range(int(line[1:]))]
        if kind == b"#":
            return line[1:] == b"t"
        if kind == b",":
            return float(line[1:])
        if kind == b"(":
            return int(line[1:])
        if kind in (b"=", b"!"):  # verbatim string ("txt:" first), blob error
            size = int(line[1:])
            while len(self._buf) - self._pos < size + 2:
                self._fill()
            data = self._buf[self._pos : self._pos + size]
            self._pos += size + 2
            return data[4:] if kind == b"=" else _error(data.decode("utf-8", "replace"))
        if kind == b"|":  # attributes describe the reply that follows: skipped
            for _ in range(2 * int(line[1:])):
                self._parse()
            return self._parse()
        # read_reply() drops the connection: what follows on it cannot be trusted
        raise RedisConnectionError(f"protocol error: unexpected reply {line[:40]!r}")


def _hashable(key: object) -> object:
    return tuple(key) if isinstance(key, list) else key


__all__ = ["NoScriptError", "Push", "RedisAuthError", "RedisConnectionError", "ReplyParser", "ResponseError", "pack"]
