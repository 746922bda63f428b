"""A small HTTP server for ``/metrics``, in a thread of its own, with clear errors at bind time."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from taskq.errors import ConfigError

logger = logging.getLogger(__name__)

#: The one path served; any other is 404.
METRICS_PATH = "/metrics"

Render = Callable[[], tuple[bytes, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in (METRICS_PATH, METRICS_PATH + "/"):
            self.send_error(404, f"only {METRICS_PATH} is served here")
            return
        try:
            body, content_type = self.server.render()
        except Exception:
            logger.exception("could not render the metrics")
            self.send_error(500, "could not render the metrics; see the log")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        logger.debug("metrics request: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], render: Render) -> None:
        self.render = render
        super().__init__(address, _Handler)


class MetricsServer:
    """Serves ``render()`` at ``http://address:port/metrics`` until :meth:`close`.

    Raises:
        ConfigError: the port is taken or the address cannot be bound; the message names
            ``setting``, the option or setting that chose them.
    """

    def __init__(self, render: Render, address: str, port: int, *, setting: str) -> None:
        try:
            self._server = _Server((address, port), render)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"cannot serve metrics on {address}:{port} ({setting} = {port}): the port is already in use "
                    f"by another process; choose a free port for {setting}"
                ) from exc
            raise ConfigError(
                f"cannot serve metrics on {address}:{port} ({setting} = {port}): {exc.strerror or exc}; "
                f"check the address and the port"
            ) from exc
        self.address = address
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="taskq-metrics-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


__all__ = ["METRICS_PATH", "MetricsServer"]
