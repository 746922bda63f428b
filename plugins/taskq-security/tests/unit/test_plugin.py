"""The plugin in an app: its settings, what turns signing and checking on, and what it refuses."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import taskq_security
from taskq import App
from taskq.errors import ConfigError
from taskq.testing import start_worker
from taskq_security.signing import SIGNATURE_HEADER, SIGNER_HEADER, fingerprint

MakeIdentity = Callable[..., Any]
Trusting = Callable[..., Path]
TIMEOUT = 10.0  # seconds


def memory_app(**settings: object) -> App:
    return App("security-unit", broker=f"memory://{uuid.uuid4().hex}", read_config=False, **settings)


def test_the_settings_are_known_with_their_defaults() -> None:
    conf = memory_app().conf
    assert conf["security_key"] is None
    assert conf["security_certificate"] is None
    assert conf["security_cert_store"] is None
    assert conf["security_key_password"] is None
    assert conf["security_digest"] == "sha256"


def test_a_misspelt_setting_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'security_cert_store'"):
        memory_app(security_certstore="/etc/taskq/trusted")


def test_the_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_SECURITY_DIGEST", "sha384")
    assert memory_app().conf["security_digest"] == "sha384"


def test_without_settings_nothing_is_signed() -> None:
    app = memory_app()
    app.send_task("proj.add", [1, 2])
    [delivery] = app.new_transport().claim([app.route("proj.add")], 1, lease=30)
    assert SIGNATURE_HEADER not in delivery.message.headers


def test_a_producer_with_a_key_signs_what_it_sends(identity: MakeIdentity) -> None:
    producer = identity("producer")
    app = memory_app(security_key=str(producer.key_path), security_certificate=str(producer.certificate_path))
    app.send_task("proj.add", [1, 2])
    [delivery] = app.new_transport().claim([app.route("proj.add")], 1, lease=30)
    assert delivery.message.headers[SIGNER_HEADER] == fingerprint(producer.certificate)
    assert str(delivery.message.headers[SIGNATURE_HEADER]).startswith("sha256:")


def test_a_key_without_its_certificate_says_what_is_missing(identity: MakeIdentity) -> None:
    app = memory_app(security_key=str(identity("producer").key_path))
    with pytest.raises(ConfigError, match="security_certificate is not set"):
        app.send_task("proj.add", [1, 2])


def test_setup_security_loads_the_files_at_once(identity: MakeIdentity, tmp_path: Path) -> None:
    producer = identity("producer")
    app = memory_app()
    with pytest.raises(ConfigError, match="cannot read the certificate"):
        taskq_security.setup_security(app, key=str(producer.key_path), certificate=str(tmp_path / "missing.pem"))
    taskq_security.setup_security(app, key=str(producer.key_path), certificate=str(producer.certificate_path))
    assert app.conf["security_certificate"] == str(producer.certificate_path)


def test_a_checking_worker_without_a_key_of_its_own_does_not_start(identity: MakeIdentity, trusting: Trusting) -> None:
    app = memory_app(security_cert_store=str(trusting(identity("producer"))))
    with pytest.raises(ConfigError, match="could not sign the retries, chain steps"), start_worker(app, pool="solo"):
        pytest.fail("the worker started")


def test_a_worker_with_an_empty_cert_store_does_not_start(identity: MakeIdentity, tmp_path: Path) -> None:
    worker_id = identity("worker")
    empty = tmp_path / "empty-store"
    empty.mkdir()
    app = memory_app(
        security_key=str(worker_id.key_path),
        security_certificate=str(worker_id.certificate_path),
        security_cert_store=str(empty),
    )
    with pytest.raises(ConfigError, match="holds no certificate"), start_worker(app, pool="solo"):
        pytest.fail("the worker started")


def test_a_checking_worker_runs_signed_tasks_and_dead_letters_unsigned_ones(
    identity: MakeIdentity, trusting: Trusting
) -> None:
    worker_id = identity("worker")
    broker = f"memory://{uuid.uuid4().hex}"
    app = App("security-unit", broker=broker, read_config=False)
    taskq_security.setup_security(
        app,
        key=str(worker_id.key_path),
        certificate=str(worker_id.certificate_path),
        cert_store=str(trusting(worker_id)),
    )

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    App("stranger", broker=broker, read_config=False).send_task("proj.add", [1, 1])
    with start_worker(app, pool="solo"):
        assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
    [letter] = app.new_transport().dead_letters()
    assert letter.reason.startswith("unsigned message (task 'proj.add'"), letter.reason


def test_rejecting_replays_without_a_result_backend_is_a_configuration_error(
    identity: MakeIdentity, trusting: Trusting
) -> None:
    worker_id = identity("worker")
    app = memory_app(
        result_backend="disabled",
        security_key=str(worker_id.key_path),
        security_certificate=str(worker_id.certificate_path),
        security_cert_store=str(trusting(worker_id)),
        security_reject_replays=True,
    )
    with pytest.raises(ConfigError, match="security_reject_replays is on, but results are disabled"):
        app.send_task("proj.add", [1, 2])


def test_the_public_api_is_pinned() -> None:
    assert taskq_security.__all__ == ["setup_security"]


def test_an_app_that_does_not_sign_never_imports_cryptography() -> None:
    code = (
        "import sys, uuid\n"
        "from taskq import App\n"
        "app = App('x', broker=f'memory://{uuid.uuid4().hex}', read_config=False)\n"
        "app.send_task('proj.add', [1, 2])\n"
        "assert 'security' in app.plugins.infos\n"
        "print('cryptography' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False", done.stderr
