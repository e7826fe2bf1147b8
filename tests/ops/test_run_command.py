"""`smsgw run` as a newcomer uses it, on a terminal: start, paste the printed curl, see
the message delivered, read the log lines (not JSON), Ctrl-C stops everything it
started."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from smsgw import processes


@pytest.fixture
def data_dir():
    base = Path(tempfile.mkdtemp(prefix="smsgw-run-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _read_banner(proc: subprocess.Popen[str], deadline: float) -> str:
    lines: list[str] = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line)
        if "Ctrl-C stops" in line:
            return "".join(lines)
    raise AssertionError("no banner; output was:\n" + "".join(lines))


def _read_all(controller: int, into: bytearray) -> None:
    """What the processes write to the terminal, until the last of them closes it."""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: no process holds the terminal any more
            return
        if not chunk:
            return
        into += chunk


def test_run_prints_a_curl_that_sends_a_message_which_gets_delivered(data_dir):
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.pop("DATABASE_URL", None)
    env.update({"SMSGW_DATA_DIR": str(data_dir), "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "0.2"})
    # The log (stderr, the children's too) goes to a terminal, as when a person runs it.
    controller, terminal = os.openpty()
    proc = subprocess.Popen(
        processes.smsgw_command("run", "--port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    log = bytearray()
    reader = threading.Thread(target=_read_all, args=(controller, log), daemon=True)
    reader.start()
    try:
        banner = _read_banner(proc, time.monotonic() + 120)
        curl = re.search(r"^  (curl -s -X POST .*?)\n\n", banner, re.MULTILINE | re.DOTALL)
        assert curl, banner
        key = re.search(r"demo tenant API key: (\S+)", banner)
        assert key
        done = subprocess.run(
            ["bash", "-c", curl.group(1) + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, status = done.stdout.rsplit("\n", 1)
        assert status == "202", done.stdout
        message = json.loads(body)
        assert message["status"] == "queued"
        # No sender named: the gateway picked the demo tenant's own number.
        own = re.search(r"it sends from its number (\+\d+)", banner)
        assert own, banner
        assert message["from"] == own.group(1)
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        url = f"http://127.0.0.1:{port}/v1/messages/{message['id']}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = httpx.get(url, headers=headers, timeout=5).json()
            if seen["status"] == "delivered":
                break
            time.sleep(0.2)
        assert seen["status"] == "delivered", seen
        # The one-time links open the consoles, once.
        for audience in ("demo tenant", "operator"):
            link = re.search(rf"as the {audience}: (\S+)", banner)
            assert link, banner
            with httpx.Client(timeout=10) as browser:
                signed = browser.get(link.group(1), follow_redirects=True)
                assert signed.status_code == 200
                assert "Sign out" in signed.text
            assert httpx.get(link.group(1), timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        reader.join(timeout=10)
        os.close(controller)
    assert code == 0
    # Human-readable lines on a terminal, from the API and the worker it started too.
    lines = log.decode(errors="replace").splitlines()
    assert any("worker.started" in line for line in lines), lines
    assert any("Listening at" in line for line in lines), lines
    assert not [line for line in lines if line.lstrip().startswith("{")], lines
    # Everything it started is gone: the port is free and PostgreSQL is stopped.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert not (data_dir / "postgres" / "cluster" / "postmaster.pid").exists()
