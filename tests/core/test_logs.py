"""A JSON log line is one JSON object per line whatever the values it is given: ids and
times as their text, other objects as their repr, non-ASCII text as it is."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import tempfile
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


def _configured(monkeypatch, level: str) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    logs.configure(json=True, level=level)
    return out


def _procrastinate_lines() -> None:
    """What procrastinate logs around one job, with the `action` extra it gives each
    record (procrastinate/worker.py, periodic.py), plus a failure and a warning."""
    worker = logging.getLogger("procrastinate.worker")
    named = worker.getChild("worker")  # the worker's own logger, named after it
    periodic = logging.getLogger("procrastinate.periodic")
    periodic.info("Periodic job deferred", extra={"action": "periodic_task_deferred"})
    named.info("Starting job", extra={"action": "start_job"})
    worker.info("Job ended with status: Success", extra={"action": "job_success"})
    worker.error("Job ended with status: Error", extra={"action": "job_error"})
    named.info("Stopped worker on queues", extra={"action": "stop_worker"})
    logging.getLogger("procrastinate.signals").warning("Received signal")


def test_procrastinates_per_job_lines_are_debug_and_its_failures_stay(monkeypatch) -> None:
    out = _configured(monkeypatch, "INFO")
    try:
        _procrastinate_lines()
    finally:
        structlog.reset_defaults()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["event"], r["level"]) for r in records] == [
        ("Job ended with status: Error", "error"),
        ("Stopped worker on queues", "info"),
        ("Received signal", "warning"),
    ]


def test_at_debug_procrastinates_per_job_lines_are_written_as_debug(monkeypatch) -> None:
    out = _configured(monkeypatch, "DEBUG")
    try:
        _procrastinate_lines()
    finally:
        structlog.reset_defaults()
    levels = {
        json.loads(line)["event"]: json.loads(line)["level"] for line in out.getvalue().splitlines()
    }
    assert levels == {
        "Periodic job deferred": "debug",
        "Starting job": "debug",
        "Job ended with status: Success": "debug",
        "Job ended with status: Error": "error",
        "Stopped worker on queues": "info",
        "Received signal": "warning",
    }


def test_json_unless_the_log_goes_to_a_terminal_and_the_setting_decides_when_set() -> None:
    controller, terminal = os.openpty()
    with open(terminal, "w") as tty, tempfile.TemporaryFile("w") as file:
        assert logs.wants_json(None, tty) is False
        assert logs.wants_json(None, file) is True
        assert logs.wants_json(True, tty) is True
        assert logs.wants_json(False, file) is False
    os.close(controller)
