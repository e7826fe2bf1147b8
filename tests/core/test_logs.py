"""A JSON log line is one JSON object per line whatever the values it is given: ids and
times as their text, other objects as their repr, non-ASCII text as it is."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from datetime import UTC, datetime

import structlog

from core import logs


class Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def test_a_json_line_carries_every_value_as_text(monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    logs.configure(json=True)
    try:
        message_id = uuid.uuid4()
        at = datetime(2026, 11, 27, 3, 4, 5, tzinfo=UTC)
        structlog.get_logger(f"test.{uuid.uuid4().hex}").info(
            "sent", message_id=message_id, at=at, thing=Opaque(), name="Zoë 🙂", n=3
        )
    finally:
        structlog.reset_defaults()
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "sent"
    assert record["level"] == "info"
    assert record["message_id"] == str(message_id)
    assert datetime.fromisoformat(record["at"]) == at
    assert record["thing"] == "<opaque>"
    assert record["name"] == "Zoë 🙂"
    assert record["n"] == 3
