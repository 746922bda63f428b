"""A private RabbitMQ node on free loopback ports, for tests that stop and restart it.

It has a TLS listener with certificates made by openssl for the occasion, and a short
``consumer_timeout``. Stopped by its node name, never by a process name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# Seconds to wait for the node to accept connections (it takes about 4).
START_TIMEOUT = 60.0
# The node closes a channel that holds a message unacked longer than this, in ms.
CONSUMER_TIMEOUT_MS = 3000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificates(folder: Path) -> None:
    """A CA and a server certificate for localhost and 127.0.0.1."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=taskq-test-ca")  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"
    )
    (folder / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip


@dataclass
class PrivateBroker:
    folder: Path
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    node: str = field(default_factory=lambda: f"taskq-test-{uuid.uuid4().hex[:8]}@localhost")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def tls_url(self) -> str:
        return f"amqps://guest:guest@localhost:{self.tls_port}//"

    @property
    def ca_file(self) -> str:
        return str(self.folder / "ca.pem")

    def env(self) -> dict[str, str]:
        config = self.folder / "rabbitmq.conf"
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_PID_FILE": str(self.folder / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
        }

    def configure(self) -> None:
        # Debian's rabbitmq-server runs the node as the rabbitmq user: it must own the folder.
        make_certificates(self.folder)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
            f"ssl_options.cacertfile = {self.folder / 'ca.pem'}\n"
            f"ssl_options.certfile = {self.folder / 'server.pem'}\n"
            f"ssl_options.keyfile = {self.folder / 'server.key'}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n"
        )
        try:
            owner = pwd.getpwnam("rabbitmq")
        except KeyError:
            return
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env(), check=True, capture_output=True, timeout=60)
        end = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError as exc:
                if time.monotonic() > end:
                    raise RuntimeError(
                        f"the private RabbitMQ {self.node} did not start; see {self.folder / 'log'}"
                    ) from exc
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env(), capture_output=True, timeout=60)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def new_folder() -> Path:
    """A folder outside pytest's root-only tree, which the rabbitmq user could not enter."""
    return Path(tempfile.mkdtemp(prefix="taskq-rabbitmq-"))
