"""Processes on this machine: a free loopback port, `smsgw <command>` started as a child,
waiting until it answers, and stopping it. `smsgw run` uses these; so do the tests and
the tools under ops/, which start the gateway the way an operator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

LOOPBACK = "127.0.0.1"


class StartError(RuntimeError):
    """A process did not come up: it exited, or it did not answer in time."""


def free_port(preferred: int | None = None) -> int:
    """A loopback TCP port nothing listens on: ``preferred`` or the first free one of
    the 200 above it (a stable port for a server that keeps its data between runs),
    else whichever the kernel hands out."""
    if preferred is not None:
        for port in range(preferred, preferred + 200):
            with socket.socket() as sock:
                try:
                    sock.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
        raise StartError(f"no free TCP port near {preferred}")
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def smsgw_command(*args: str) -> list[str]:
    """The argv of `smsgw <args>` with this interpreter: the same code whether the
    package is installed or run from a checkout."""
    return [sys.executable, "-m", "smsgw", *args]


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | IO[bytes] | int | None = subprocess.DEVNULL,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv``; its output (stderr too) goes to ``log``: a path (appended to), an
    open file, nowhere (the default), or ``None`` for this process's own terminal.
    ``own_group``: a process group of its own, so a kill reaches what it started too."""
    out: IO[bytes] | int | None = log if not isinstance(log, Path) else None
    opened = None
    if isinstance(log, Path):
        out = opened = log.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            stdout=out,
            stderr=None if out is None else subprocess.STDOUT,
            start_new_session=own_group,
        )
    finally:
        if opened is not None:
            opened.close()  # the child has its own descriptor now


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM (a worker settles what it is sending, an API finishes its requests), then
    SIGKILL after ``timeout`` seconds. Returns the exit status."""
    return stop_all([proc], timeout)[0]


def stop_all(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 30) -> list[int]:
    """Like ``stop``, for several at once: all are asked first, then each is waited for,
    so they wind down side by side."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait(timeout=10))
    return codes


def _check_alive(watch: Sequence[subprocess.Popen[bytes]], what: str) -> None:
    for proc in watch:
        if proc.poll() is not None:
            raise StartError(f"{what}: a process exited (status {proc.returncode}) first")


def wait_http(
    url: str,
    *,
    watch: Sequence[subprocess.Popen[bytes]] = (),
    timeout: float = 60,
    any_answer: bool = False,
) -> None:
    """Until GET ``url`` answers 200 (``any_answer``: answers at all, for a server
    without a readiness route). Raises StartError when a process in ``watch`` exits
    first, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(watch, url)
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(url, timeout=2)
            if any_answer or answer.status_code == 200:
                return
        time.sleep(0.1)
    raise StartError(f"{url} did not answer within {timeout:.0f} s")


async def await_http(
    url: str, *, exited: Callable[[], bool] = lambda: False, within: float = 60
) -> None:
    """``wait_http`` for a caller on an event loop: ``exited`` says whether the server's
    process is gone (an asyncio subprocess has no poll())."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while loop.time() < deadline:
            if exited():
                raise StartError(f"{url}: the process exited first")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise StartError(f"{url} did not answer within {within:.0f} s")


def wait_listening(
    host: str,
    port: int,
    *,
    watch: Sequence[subprocess.Popen[bytes]] = (),
    timeout: float = 30,
) -> None:
    """Until something accepts TCP connections on ``host``:``port`` (the SMPP listener)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(watch, f"{host}:{port}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"nothing listened on {host}:{port} within {timeout:.0f} s")
