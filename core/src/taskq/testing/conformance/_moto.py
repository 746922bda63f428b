"""moto's AWS API server answering one request at a time; run by :func:`servers.moto_server`.

DynamoDB applies each write to an item whole: two concurrent ``UpdateItem ADD`` calls both
count and each answers its own new value, and S3 and SQS keep each call atomic the same
way. moto's backends keep no lock: under its threaded server two such calls interleave
(both answer 2, an increment is lost), which the conformance kit's atomic counter tests
catch now and then. Behind one lock, moto gives the atomicity the real services have;
connections are still accepted and kept alive in parallel, and each response is built
whole inside the lock.

    python -m taskq.testing.conformance._moto -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable, Sequence

Environ = dict[str, object]
StartResponse = Callable[..., object]
Application = Callable[[Environ, StartResponse], Iterable[bytes]]


def one_request_at_a_time(application: Application) -> Application:
    """``application`` behind a lock: each call, body included, is done before the next starts."""
    lock = threading.Lock()

    def serialized(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with lock:
            return list(application(environ, start_response))

    return serialized


def main(argv: Sequence[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    options = parser.parse_args(argv)
    # What moto's own server builds, with the application serialized.
    application = one_request_at_a_time(DomainDispatcherApplication(create_backend_app))
    server = make_server(options.host, options.port, application, threaded=True, request_handler=MotoRequestHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
