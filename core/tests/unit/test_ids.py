"""Task ids: random version 4 UUIDs in Celery's text form."""

from __future__ import annotations

import uuid

from taskq._ids import new_id


def test_an_id_is_a_version_4_uuid_in_its_text_form() -> None:
    text = new_id()
    parsed = uuid.UUID(text)
    assert str(parsed) == text
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
