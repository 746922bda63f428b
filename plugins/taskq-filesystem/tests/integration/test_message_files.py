"""Message files: readable with cat, older files still read, a damaged one dead-lettered with its bytes."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from taskq.drivers.support.envelope import UNDECODABLE_HEADER
from taskq.drivers.transport import Message
from taskq.testing.conformance.transport import make_message
from taskq_filesystem._layout import file_name
from taskq_filesystem.transport import FilesystemTransport

QUEUE = "jobs"


def drop_file(root: Path, data: bytes) -> None:
    """Put ``data`` in the queue's waiting/ as another program would, due now."""
    folder = root / "queues" / file_name(QUEUE)
    for part in ("waiting", "claimed", "dead"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    (folder / "waiting" / f"{time.time_ns() - 1_000_000:019d}-dropped-0").write_bytes(data)


def test_a_text_body_is_stored_as_text_in_kombus_spelling(transport: FilesystemTransport, root: Path) -> None:
    transport.publish(QUEUE, Message(b"[[1], {}, {}]", {"id": "x"}))
    [path] = (root / "queues" / file_name(QUEUE) / "waiting").iterdir()
    document = json.loads(path.read_bytes())
    assert document["body"] == "[[1], {}, {}]"
    assert document["content-type"] == "application/json"


def test_a_file_written_by_taskq_filesystem_01_is_claimed(transport: FilesystemTransport, root: Path) -> None:
    old = {
        "headers": {"id": "x"},
        "properties": {},
        "content_type": "application/x-msgpack",
        "content_encoding": "binary",
        "body_encoding": "base64",
        "body": base64.b64encode(b"\x00\xff").decode(),
    }
    drop_file(root, json.dumps(old).encode())
    [delivery] = transport.claim([QUEUE], 10)
    assert delivery.message == Message(b"\x00\xff", {"id": "x"}, "application/x-msgpack", "binary")


@pytest.mark.parametrize("garbage", [b"\xff\x00 not json", b"[1, 2]", b'{"headers": {}}', b"[" * 100_000])
def test_a_damaged_file_is_claimed_as_a_stand_in_and_dead_lettered_with_its_bytes(
    transport: FilesystemTransport, root: Path, garbage: bytes
) -> None:
    drop_file(root, garbage)
    transport.publish(QUEUE, make_message())
    claimed = transport.claim([QUEUE], 10)
    [stand_in] = [d for d in claimed if UNDECODABLE_HEADER in d.message.headers]
    assert stand_in.message.body == garbage
    transport.dead_letter(stand_in, f"cannot decode the message: {stand_in.message.headers[UNDECODABLE_HEADER]}")
    transport.ack([d for d in claimed if d is not stand_in])
    assert transport.depth(QUEUE) == 0
    [dead] = transport.dead_letters(QUEUE)
    assert dead.message.body == garbage
    assert dead.reason.startswith("cannot decode the message: the envelope")


@pytest.mark.parametrize(
    "name",
    [
        f"{time.time_ns() - 1_000_000:019d}-dropped-\u00b2",  # a digit int() refuses
        "\u00b9\u00b2\u00b3" + "0" * 16 + "-dropped-0",
        f"{time.time_ns() - 1_000_000:019d}-\u0663",
    ],
    ids=["superscript-count", "superscript-due", "arabic-digit-count"],
)
def test_a_file_whose_name_is_not_a_message_name_is_left_alone(
    transport: FilesystemTransport, root: Path, name: str
) -> None:
    drop_file(root, b"{}")
    waiting = root / "queues" / file_name(QUEUE) / "waiting"
    for dropped in waiting.iterdir():
        dropped.rename(waiting / name)
    transport.publish(QUEUE, Message(b"good", {"id": "1"}))
    [delivery] = transport.claim([QUEUE], 10)
    assert delivery.message.body == b"good"
    transport.wait([QUEUE], 0.01)  # reads the due times of every waiting name
    transport.ack([delivery])


def test_a_directory_named_like_a_message_is_handed_over_as_a_stand_in_and_dead_lettered(
    transport: FilesystemTransport, root: Path
) -> None:
    drop_file(root, b"{}")
    waiting = root / "queues" / file_name(QUEUE) / "waiting"
    for dropped in waiting.iterdir():
        dropped.unlink()
        dropped.mkdir()
        (dropped / "inside").write_bytes(b"x")
    transport.publish(QUEUE, Message(b"good", {"id": "1"}))
    claimed = transport.claim([QUEUE], 10)  # raised BrokerUnavailableError ("Is a directory")
    assert sorted(d.message.body for d in claimed) == [b"", b"good"]
    [stand_in] = [d for d in claimed if d.message.body == b""]
    assert "cannot be read" in str(stand_in.message.headers[UNDECODABLE_HEADER])
    transport.dead_letter(stand_in, "cannot decode the message")
    transport.ack([d for d in claimed if d is not stand_in])
    assert transport.depth(QUEUE) == 0
    [dead] = transport.dead_letters(QUEUE)
    assert dead.reason == "cannot decode the message"


def test_a_file_this_user_cannot_claim_stays_and_the_others_are_claimed(
    transport: FilesystemTransport, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An immutable file (chattr +i; root ignores ownership, not that) cannot have its lease
    time set: every claim raised BrokerUnavailableError, and the queue stood still."""
    import subprocess

    drop_file(root, b"{}")
    [stuck] = (root / "queues" / file_name(QUEUE) / "waiting").iterdir()
    made = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.fail(f"chattr +i failed ({made.stderr.strip()}): this test needs root on ext4, as on CI")
    try:
        transport.publish(QUEUE, Message(b"good", {"id": "1"}))
        [delivery] = transport.claim([QUEUE], 10)
        assert delivery.message.body == b"good"
        transport.ack([delivery])
        assert transport.claim([QUEUE], 10) == []
        started = time.monotonic()
        transport.wait([QUEUE], 0.3)  # the stuck file is due, but not claimable: no busy loop
        assert time.monotonic() - started >= 0.25
        assert stuck.exists()
        assert caplog.text.count("cannot claim") == 1
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
