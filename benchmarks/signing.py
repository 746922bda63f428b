"""Drain and enqueue rates on SQLite with message signing (taskq-security) off and on.

    python -m benchmarks.signing [--count N] [--repeat K] [--keys ec,rsa,ed25519]

Each round uses a fresh SQLite file in a temporary directory. N no-op tasks
(``ignore_result=True``) are enqueued with no worker running (timed: the enqueue rate, where
the producer signs), then an in-process worker (solo pool, one slot) drains them (timed from
the first task's start to the last one's, so start-up is excluded: the drain rate, where the
worker checks each signature). Rounds take turns (off, then each key type, K times) and the
medians are printed, with each key type's rate as a fraction of the unsigned one.
Keys and self-signed certificates are made for the run with cryptography.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from taskq import App
from taskq.testing import start_worker

# Longest a drain may take, in seconds.
DRAIN_TIMEOUT = 600.0


def write_identity(folder: Path, kind: str) -> tuple[Path, Path]:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bench-{kind}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None if kind == "ed25519" else hashes.SHA256())
    )
    key_path, certificate_path = folder / f"{kind}.key", folder / f"{kind}.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, certificate_path


def one_round(kind: str | None, count: int) -> tuple[float, float]:
    """(enqueue rate, drain rate) in tasks per second, signing with ``kind`` of key (None: off)."""
    with tempfile.TemporaryDirectory(prefix="taskq-bench-signing-") as tmp:
        folder = Path(tmp)
        settings: dict[str, object] = {}
        if kind is not None:
            key, certificate = write_identity(folder, kind)
            store = folder / "trusted"
            store.mkdir()
            (store / certificate.name).write_bytes(certificate.read_bytes())
            settings = {
                "security_key": str(key),
                "security_certificate": str(certificate),
                "security_cert_store": str(store),
            }
        app = App("bench", broker=f"sqlite:///{folder}/taskq.db", read_config=False, **settings)
        starts: list[float] = []
        done = threading.Event()

        @app.task(name="bench.noop", ignore_result=True)
        def noop() -> None:
            starts.append(time.perf_counter())
            if len(starts) == count:
                done.set()

        began = time.perf_counter()
        for _ in range(count):
            noop.delay()
        enqueue = count / (time.perf_counter() - began)
        with start_worker(app, pool="solo", concurrency=1):
            if not done.wait(DRAIN_TIMEOUT):
                raise RuntimeError(f"the worker ran {len(starts)} of {count} tasks in {DRAIN_TIMEOUT}s")
        app.close()
        return enqueue, (count - 1) / (starts[-1] - starts[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="tasks per round (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per setting (default 3)")
    parser.add_argument("--keys", default="ec,rsa,ed25519", help="key types to sign with (default ec,rsa,ed25519)")
    options = parser.parse_args()
    kinds: list[str | None] = [None, *options.keys.split(",")]
    results: dict[str | None, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for _ in range(options.repeat):
        for kind in kinds:
            results[kind].append(one_round(kind, options.count))
    base_enqueue = statistics.median(r[0] for r in results[None])
    base_drain = statistics.median(r[1] for r in results[None])
    print(f"SQLite, solo pool, {options.count} no-op tasks, median of {options.repeat} rounds")
    print(f"{'signing':<12} {'enqueue/s':>10} {'ratio':>6} {'drain/s':>10} {'ratio':>6}")
    for kind in kinds:
        enqueue = statistics.median(r[0] for r in results[kind])
        drain = statistics.median(r[1] for r in results[kind])
        label = "off" if kind is None else kind
        print(f"{label:<12} {enqueue:>10.0f} {enqueue / base_enqueue:>6.2f} {drain:>10.0f} {drain / base_drain:>6.2f}")


if __name__ == "__main__":
    main()
