"""The signed form, the signer and the verifier, on messages built in memory."""

from __future__ import annotations

import base64
import copy
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.errors import ConfigError
from taskq_security.signing import (
    SIGNATURE_HEADER,
    SIGNED_HEADERS,
    SIGNER_HEADER,
    Signer,
    Verifier,
    canonical_form,
    load_certificates,
)

MakeIdentity = Callable[..., Any]
Trusting = Callable[..., Path]

BODY = json.dumps([[2, 3], {"scale": 1}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]).encode()


def task_message() -> Message:
    headers: dict[str, object] = {
        "lang": "py",
        "task": "proj.add",
        "id": "6b1c0d5e-0000-4000-8000-000000000001",
        "shadow": None,
        "eta": None,
        "expires": "2030-01-01T00:00:00+00:00",
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [30.0, None],
        "root_id": "6b1c0d5e-0000-4000-8000-000000000001",
        "parent_id": None,
        "argsrepr": "(2, 3)",
        "kwargsrepr": "{'scale': 1}",
        "origin": "gen1@host",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
    properties: dict[str, object] = {"correlation_id": headers["id"], "reply_to": None, "delivery_mode": 2}
    return Message(BODY, headers, "application/json", "utf-8", properties)


def through_json(message: Message) -> Message:
    """The message as a transport hands it back: headers and properties through JSON."""
    return Message(
        message.body,
        json.loads(json.dumps(message.headers)),
        message.content_type,
        message.content_encoding,
        json.loads(json.dumps(message.properties)),
    )


# ---- The signed form ---------------------------------------------------------------------


def test_the_signed_form_is_pinned() -> None:
    # Changing it breaks every signature in flight: a new form gets a new version line.
    expected = (
        b"taskq-signature-1\n"
        b'{"content_encoding":"utf-8","content_type":"application/json","headers":{"eta":null,'
        b'"expires":"2030-01-01T00:00:00+00:00","group":null,"group_index":null,'
        b'"id":"6b1c0d5e-0000-4000-8000-000000000001","ignore_result":false,"parent_id":null,"retries":0,'
        b'"root_id":"6b1c0d5e-0000-4000-8000-000000000001","shadow":null,"task":"proj.add",'
        b'"timelimit":[30.0,null]},"reply_to":null}\n' + BODY
    )
    assert canonical_form(task_message()) == expected


def test_the_signed_form_ignores_header_order_and_a_trip_through_json() -> None:
    message = task_message()
    shuffled = copy.deepcopy(message)
    shuffled.headers = dict(reversed(list(message.headers.items())))
    assert canonical_form(shuffled) == canonical_form(message)
    assert canonical_form(through_json(message)) == canonical_form(message)


def test_a_missing_covered_header_reads_as_null() -> None:
    message = task_message()
    without = copy.deepcopy(message)
    del without.headers["shadow"]
    assert canonical_form(without) == canonical_form(message)


# ---- Signing and checking ----------------------------------------------------------------


@pytest.fixture
def signer(identity: MakeIdentity) -> Signer:
    producer = identity("producer")
    return Signer(producer.key, producer.certificate)


@pytest.fixture
def verifier(signer: Signer) -> Verifier:
    return Verifier([signer.certificate])


def signed(signer: Signer) -> Message:
    message = task_message()
    signer.sign(message)
    return through_json(message)


@pytest.mark.parametrize("kind", ["rsa", "ec", "ec384", "ed25519"])
@pytest.mark.parametrize("digest", ["sha256", "sha512"])
def test_each_key_type_signs_and_its_signature_verifies(identity: MakeIdentity, kind: str, digest: str) -> None:
    producer = identity(f"producer-{kind}", kind=kind)
    signer = Signer(producer.key, producer.certificate, digest)
    message = signed(signer)
    assert str(message.headers[SIGNATURE_HEADER]).startswith(f"{digest}:")
    assert Verifier([producer.certificate]).check(message) is None


@pytest.mark.parametrize("kind", ["rsa", "ec", "ed25519"])
def test_each_key_type_detects_a_changed_body(identity: MakeIdentity, kind: str) -> None:
    producer = identity(f"producer-{kind}", kind=kind)
    message = signed(Signer(producer.key, producer.certificate))
    message.body = message.body.replace(b"[2, 3]", b"[2, 4]")
    assert str(Verifier([producer.certificate]).check(message)).startswith("bad signature")


TAMPERED: dict[str, object] = {
    "task": "proj.delete_everything",
    "id": "6b1c0d5e-0000-4000-8000-000000000002",
    "shadow": "proj.other",
    "eta": "2031-01-01T00:00:00+00:00",
    "expires": None,
    "retries": 5,
    "timelimit": [None, None],
    "root_id": "6b1c0d5e-0000-4000-8000-000000000003",
    "parent_id": "6b1c0d5e-0000-4000-8000-000000000004",
    "group": "6b1c0d5e-0000-4000-8000-000000000005",
    "group_index": 3,
    "ignore_result": True,
}


def test_every_covered_header_has_a_tampered_value_below() -> None:
    assert set(TAMPERED) == set(SIGNED_HEADERS)


@pytest.mark.parametrize("header", SIGNED_HEADERS)
def test_a_changed_covered_header_is_a_bad_signature(signer: Signer, verifier: Verifier, header: str) -> None:
    message = signed(signer)
    message.headers[header] = TAMPERED[header]
    reason = verifier.check(message)
    assert reason is not None and reason.startswith("bad signature"), reason
    assert "changed after it was signed" in reason


@pytest.mark.parametrize(
    "change",
    [
        lambda m: setattr(m, "body", m.body.replace(b'"chain": null', b'"chain": [{"task": "proj.evil"}]')),
        lambda m: setattr(m, "content_type", "application/x-python-serialize"),
        lambda m: setattr(m, "content_encoding", "latin-1"),
        lambda m: m.properties.__setitem__("reply_to", "someone-elses-queue"),
    ],
    ids=["chain-in-body", "content-type", "content-encoding", "reply-to"],
)
def test_a_changed_body_content_type_or_reply_to_is_a_bad_signature(
    signer: Signer, verifier: Verifier, change: Callable[[Message], None]
) -> None:
    message = signed(signer)
    change(message)
    assert str(verifier.check(message)).startswith("bad signature")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("argsrepr", "(1, 1)"),
        ("kwargsrepr", "{}"),
        ("origin", "elsewhere"),
        ("lang", "rb"),
        ("stamps", {"x": 1}),
        ("x-custom", "added on the way"),
    ],
)
def test_a_changed_header_the_signature_does_not_cover_still_verifies(
    signer: Signer, verifier: Verifier, header: str, value: object
) -> None:
    message = signed(signer)
    message.headers[header] = value
    assert verifier.check(message) is None


def test_an_unsigned_message_is_refused_with_the_task_it_claims(verifier: Verifier) -> None:
    reason = verifier.check(task_message())
    assert reason is not None
    assert reason.startswith("unsigned message (task 'proj.add'[6b1c0d5e-0000-4000-8000-000000000001], unverified)")
    assert "security_key" in reason


def test_a_signer_not_in_the_store_is_unknown(signer: Signer, identity: MakeIdentity) -> None:
    other = identity("other")
    reason = Verifier([other.certificate], store="/etc/taskq/trusted").check(signed(signer))
    assert reason is not None and reason.startswith("unknown signer 'sha256:"), reason
    assert "/etc/taskq/trusted" in reason


def test_a_signature_made_with_another_key_under_a_trusted_name_is_bad(
    signer: Signer, verifier: Verifier, identity: MakeIdentity
) -> None:
    intruder = identity("intruder")
    message = signed(Signer(intruder.key, intruder.certificate))
    message.headers[SIGNER_HEADER] = signer.signer  # claims to be the trusted producer
    assert str(verifier.check(message)).startswith("bad signature")


def test_an_expired_certificate_is_refused(identity: MakeIdentity) -> None:
    now = datetime.datetime.now(datetime.UTC)
    old = identity("old", valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(days=1))
    message = signed(Signer(old.key, old.certificate))
    reason = Verifier([old.certificate]).check(message)
    assert reason is not None and reason.startswith("expired certificate"), reason
    assert "CN=old" in reason


def test_a_certificate_expires_by_the_verifiers_clock(signer: Signer) -> None:
    message = signed(signer)
    after = signer.certificate.not_valid_after_utc.timestamp() + 1
    assert Verifier([signer.certificate]).check(message) is None
    assert str(Verifier([signer.certificate], clock=lambda: after).check(message)).startswith("expired certificate")


def test_a_certificate_not_yet_valid_is_refused(signer: Signer) -> None:
    before = signer.certificate.not_valid_before_utc.timestamp() - 1
    reason = Verifier([signer.certificate], clock=lambda: before).check(signed(signer))
    assert str(reason).startswith("certificate not yet valid")


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.__setitem__(SIGNATURE_HEADER, 42),
        lambda h: h.pop(SIGNER_HEADER),
        lambda h: h.__setitem__(SIGNATURE_HEADER, "md5:" + str(h[SIGNATURE_HEADER]).partition(":")[2]),
        lambda h: h.__setitem__(SIGNATURE_HEADER, "sha256:not base64!"),
        lambda h: h.__setitem__(SIGNATURE_HEADER, "sha256:" + base64.b64encode(b"short").decode()),
        lambda h: h.__setitem__("timelimit", [float("nan"), None]),
        lambda h: h.__setitem__("task", {"nested": [[[[]]]]}),
    ],
    ids=["not-text", "no-signer", "unknown-digest", "not-base64", "wrong-length", "nan", "object"],
)
def test_a_malformed_signature_or_covered_header_is_refused_without_raising(
    signer: Signer, verifier: Verifier, change: Callable[[dict[str, object]], None]
) -> None:
    message = signed(signer)
    change(message.headers)
    reason = verifier.check(message)
    assert reason is not None and reason.startswith(("malformed signature", "bad signature")), reason


def test_an_undecodable_envelope_keeps_the_transports_reason(verifier: Verifier) -> None:
    message = Message(b"\xff", {UNDECODABLE_HEADER: "the envelope is not JSON"}, "application/x-undecodable")
    assert verifier.check(message) == "cannot decode the message: the envelope is not JSON"


def test_a_long_claimed_task_name_is_cut_short_in_the_reason(verifier: Verifier) -> None:
    message = task_message()
    message.headers["task"] = "x" * 10_000
    reason = str(verifier.check(message))
    assert len(reason) < 500 and "..." in reason


# ---- Loading keys and certificates -------------------------------------------------------


def test_a_signer_loads_an_encrypted_key_with_its_password(identity: MakeIdentity) -> None:
    producer = identity("locked", password=b"s3cret-pw")
    signer = Signer.from_files(str(producer.key_path), str(producer.certificate_path), password="s3cret-pw")
    assert Verifier([producer.certificate]).check(signed(signer)) is None


def test_a_wrong_password_says_so_without_printing_it(identity: MakeIdentity) -> None:
    producer = identity("locked", password=b"s3cret-pw")
    with pytest.raises(ConfigError, match="security_key_password") as raised:
        Signer.from_files(str(producer.key_path), str(producer.certificate_path), password="wrong-pw")
    assert "wrong-pw" not in str(raised.value) and "s3cret-pw" not in str(raised.value)


def test_an_encrypted_key_without_a_password_says_which_setting_to_set(identity: MakeIdentity) -> None:
    producer = identity("locked", password=b"s3cret-pw")
    with pytest.raises(ConfigError, match="Set security_key_password"):
        Signer.from_files(str(producer.key_path), str(producer.certificate_path))


def test_a_key_that_does_not_match_its_certificate_is_refused(identity: MakeIdentity) -> None:
    one, two = identity("one"), identity("two")
    with pytest.raises(ConfigError, match="does not belong to security_certificate"):
        Signer.from_files(str(one.key_path), str(two.certificate_path))


def test_a_missing_key_file_names_the_setting(tmp_path: Path, identity: MakeIdentity) -> None:
    producer = identity("producer")
    with pytest.raises(ConfigError, match=r"cannot read the private key security_key = .*nope\.key"):
        Signer.from_files(str(tmp_path / "nope.key"), str(producer.certificate_path))


def test_an_unknown_digest_lists_the_digests(identity: MakeIdentity) -> None:
    producer = identity("producer")
    with pytest.raises(ConfigError, match="sha256, sha384, sha512"):
        Signer(producer.key, producer.certificate, "md5")


def test_a_cert_store_is_a_directory_a_glob_or_a_file(identity: MakeIdentity, trusting: Trusting) -> None:
    one, two = identity("one"), identity("two")
    folder = trusting(one, two)
    (folder / "README.txt").write_text("not a certificate, and not read")
    assert len(load_certificates(str(folder))) == 2
    assert len(load_certificates(str(folder / "one.*"))) == 1
    assert len(load_certificates(str(folder / "two.pem"))) == 1
    bundle = folder / "bundle.crt"
    bundle.write_bytes(one.certificate_path.read_bytes() + two.certificate_path.read_bytes())
    assert len(load_certificates(str(bundle))) == 2


def test_an_empty_cert_store_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no certificate"):
        load_certificates(str(tmp_path))


def test_a_file_in_the_cert_store_that_is_no_certificate_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.pem").write_text("-----BEGIN NOTHING-----\n")
    with pytest.raises(ConfigError, match=r"broken\.pem .* holds no PEM certificate"):
        load_certificates(str(tmp_path))


# ---- Whatever a message holds, the check answers -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
header_names = st.sampled_from([*SIGNED_HEADERS, SIGNATURE_HEADER, SIGNER_HEADER, "argsrepr"]) | st.text(max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(header_names, json_values, max_size=8),
    body=st.binary(max_size=64),
    properties=st.dictionaries(st.sampled_from(["reply_to", "priority"]), json_values, max_size=2),
    keep_signature=st.booleans(),
)
def test_any_message_gets_an_answer_and_only_an_unchanged_signed_one_passes(
    signer: Signer,
    verifier: Verifier,
    headers: dict[str, object],
    body: bytes,
    properties: dict[str, object],
    keep_signature: bool,
) -> None:
    message = Message(body, headers, "application/json", "utf-8", properties)
    if keep_signature:
        original = signed(signer)
        message.headers.update({name: original.headers[name] for name in (SIGNATURE_HEADER, SIGNER_HEADER)})
    reason = verifier.check(message)
    assert reason is None or isinstance(reason, str)
    if reason is None:  # passing means: signed, and the signed form is the original's
        assert canonical_form(message) == canonical_form(signed(signer))


@pytest.mark.parametrize(
    "message",
    [
        Message(b"", ["not", "a", "dict"]),  # type: ignore[arg-type]  # what a broken transport could hand over
        Message("text, not bytes", {}),  # type: ignore[arg-type]  # idem
        Message(b"", {}, properties=None),  # type: ignore[arg-type]  # idem
    ],
    ids=["headers-list", "body-str", "properties-none"],
)
def test_a_message_of_the_wrong_shape_is_refused_without_raising(verifier: Verifier, message: Message) -> None:
    assert str(verifier.check(message)).startswith("malformed message")
