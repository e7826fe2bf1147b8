"""A node of the formation, and the fault the drill injects into it: a power cut."""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Node:
    name: str
    pgdata: Path
    port: int
    keeper: subprocess.Popen[bytes] | None = None


def crash(node: Node) -> None:
    """SIGKILL the node's keeper, its postmaster and every backend at once: what a
    power cut would leave (backends call setsid, so the keeper's group lacks them)."""
    assert node.keeper is not None
    postmaster = _postmaster_pid(node.pgdata)
    victims = [] if postmaster is None else [postmaster, *_children(postmaster)]
    with suppress(ProcessLookupError):
        os.killpg(node.keeper.pid, signal.SIGKILL)
    for pid in victims:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    node.keeper.wait(timeout=10)


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: fields follow the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _postmaster_pid(pgdata: Path) -> int | None:
    with suppress(OSError, ValueError, IndexError):
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    return None
