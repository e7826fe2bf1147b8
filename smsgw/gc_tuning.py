"""Keep the cyclic garbage collector off the objects a process starts with.

A full collection walks every object the process tracks. In an API process, with
Litestar, psycopg, procrastinate and our modules loaded, that is 41 ms (measured after
`smsgw.asgi.create()`), during which every request in flight waits: at 64 connections such
a pause lands in the tail of the latency. Those objects live as long as the process, so
they are moved to the permanent generation once start-up is done; collections then walk
only what requests and jobs allocated since.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    # Collect first, so garbage left by start-up is freed rather than kept for good.
    gc.collect()
    gc.freeze()
