"""Workers for tests: in this process (fast), or as real `smsgw worker` processes (for
kill and signal tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from core.settings import Settings
from jobs.app import QUEUES
from jobs.worker import run_worker
from smsgw import processes

# Fast retries for tests; the simulator answers at once unless a test says otherwise.
FAST: dict[str, Any] = {
    "retry_base_seconds": 0.02,
    "retry_cap_seconds": 0.2,
    "simulator_dlr_delay_seconds": 0.05,
    "simulator_seed": 7,
    "callback_retry_base_seconds": 0.05,
    "callback_retry_cap_seconds": 0.2,
    "worker_concurrency": 8,
    # The suite's webhook receivers (tests/httpd.py) listen on 127.0.0.1.
    "webhook_allowed_networks": "127.0.0.1/32",
    # The suite's bulk sends have no history: pumping protection (tests/core/
    # test_pumping.py judges it on its own) must not suspend them under a worker.
    "pumping_floor": 10**9,
}


@contextlib.asynccontextmanager
async def in_process(
    settings: Settings, *, queues: Sequence[str] | None = None, **overrides: Any
) -> AsyncIterator[None]:
    worker_settings = msgspec.structs.replace(settings, **{**FAST, **overrides})
    task = asyncio.create_task(
        run_worker(
            worker_settings,
            queues=queues if queues is not None else QUEUES,
            install_signal_handlers=False,
        )
    )
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _env(db_url: str, overrides: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env["DATABASE_URL"] = db_url
    env["SMSGW_LOG_JSON"] = "true"
    for key, value in {**FAST, **overrides}.items():
        env[f"SMSGW_{key.upper()}"] = str(value)
    return env


@contextlib.contextmanager
def process(
    db_url: str, *, log_path: Path | None = None, **overrides: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `smsgw worker` process; its log is printed if the test fails, and kept at
    ``log_path`` when given."""
    log = (
        log_path.open("wb")
        if log_path is not None
        else tempfile.NamedTemporaryFile(prefix="smsgw-worker-", suffix=".log", delete=False)  # noqa: SIM115
    )
    proc = processes.spawn(processes.smsgw_command("worker"), env=_env(db_url, overrides), log=log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        text = Path(log.name).read_text(errors="replace")
        if log_path is None:
            Path(log.name).unlink(missing_ok=True)
        if os.environ.get("SMSGW_SHOW_WORKER_LOGS"):
            print(text)


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds.
    (A deadline for waiting, not a measurement: nothing asserts how fast it was.)"""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}")


@contextlib.contextmanager
def api_process(db_url: str, **overrides: Any) -> Iterator[str]:
    """A real `smsgw api` on a free loopback port; yields its base URL."""
    port = processes.free_port()
    env = _env(db_url, overrides)
    env.setdefault("SMSGW_ADMIN_TOKEN", "test-admin-token")
    proc = processes.spawn(processes.smsgw_command("api", "--port", str(port)), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(f"{base}/ready", watch=[proc], timeout=30)
        yield base
    finally:
        processes.stop(proc, timeout=20)
