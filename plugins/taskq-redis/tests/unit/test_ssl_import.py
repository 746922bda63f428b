"""TLS costs nothing until a ``rediss://`` URL asks for it: the drivers import ssl only then."""

from __future__ import annotations

import subprocess
import sys


def test_the_drivers_import_ssl_only_for_rediss_urls() -> None:
    code = (
        "import sys, taskq_redis.transport, taskq_redis.backend\n"
        "print('ssl' in sys.modules)\n"
        "from taskq_redis._connection import ssl_context\n"
        "ssl_context({'ssl_cert_reqs': 'none'})\n"
        "print('ssl' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "True"]
