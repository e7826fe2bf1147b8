"""The kernel's TCP socket tables (/proc/net/tcp and tcp6), for the load scripts and the
benchmark harness: which sockets are established to or from a port, and how deep a
listener's accept queue is. Linux only, as are those scripts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

ESTABLISHED = "01"
LISTEN = "0A"


@dataclass(frozen=True)
class TcpSocket:
    local_port: int
    remote_port: int
    state: str  # hex, as the kernel writes it: ESTABLISHED, LISTEN...
    receive_queue: int  # for a listener: connections waiting to be accepted
    inode: str


def sockets() -> Iterator[TcpSocket]:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    yield TcpSocket(
                        local_port=int(fields[1].rsplit(":", 1)[1], 16),
                        remote_port=int(fields[2].rsplit(":", 1)[1], 16),
                        state=fields[3],
                        receive_queue=int(fields[4].split(":")[1], 16),
                        inode=fields[9],
                    )
        except OSError:
            continue
