"""The CPU the harness's own database sessions cost the server, so that a phase's
PostgreSQL figure is the product's alone.

The harness reads the database while a phase runs (the queue's depth, the receipts due,
whether every receipt and callback is through). Those reads run in server backends like
the product's, and a backend that has exited is summed into the postmaster's reaped
time with all the others: the only moment its CPU can be told apart is before it ends.
`connection` reads its backend's CPU from /proc just before closing it and adds it here;
`CpuMeter` (system.py) moves what was added during a phase from `postgres` to
`harness`. A backend's whole life is charged when it closes, so a harness connection
should open and close inside the phase it serves (all do: the sampler and the polls
open theirs inside the phase). A load generator in a process of its own reports its
backend's seconds in its result, and the phase adds them with `add`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import psycopg

_lock = threading.Lock()
_seconds = 0.0


def backend_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (0 if it is gone or not ours to
    read: the server runs on this machine in every phase that calls this)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def add(seconds: float) -> None:
    global _seconds
    with _lock:
        _seconds += seconds


def charged() -> float:
    """Seconds added so far; a phase reads it at its start and end."""
    with _lock:
        return _seconds


@contextlib.contextmanager
def connection(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection whose backend's CPU counts as the harness's."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        pid = conn.info.backend_pid
        try:
            yield conn
        finally:
            add(backend_seconds(pid))
