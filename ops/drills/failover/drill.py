"""The run: sends flowing, the primary killed, the standby promoted, the clients back."""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import suppress
from dataclasses import dataclass

from ops.drills.failover.formation import Formation
from ops.drills.failover.gateway import Gateway, make_tenant
from ops.drills.failover.nodes import crash
from ops.drills.failover.senders import Load


@dataclass
class Timeline:
    killed: float = 0.0
    promoted: float = 0.0  # the monitor reports the standby as (wait_)primary
    victim: str = ""
    survivor: str = ""
    replication: str = ""


async def drive(
    formation: Formation, gateway: Gateway, args: argparse.Namespace
) -> tuple[Load, Timeline]:
    load = Load(
        gateway.base,
        await make_tenant(gateway),
        rate=args.rate,
        senders=args.senders,
        timeout=args.client_timeout,
    )
    timeline = Timeline()
    stop = asyncio.Event()
    clients = asyncio.create_task(load.run(stop))
    await asyncio.sleep(args.before)
    victim = formation.primary()
    survivor = next(node for node in formation.nodes if node is not victim)
    timeline.victim, timeline.survivor = victim.name, survivor.name
    timeline.replication = await asyncio.to_thread(formation.replication, victim)
    timeline.killed = time.monotonic()
    await asyncio.to_thread(crash, victim)
    print(f"killed {victim.name} (keeper, postmaster, backends: SIGKILL)", flush=True)
    await asyncio.to_thread(
        formation.wait,
        lambda s: s.get(survivor.name, ("", ""))[0] in ("wait_primary", "primary"),
        what=f"{survivor.name} to be promoted",
        timeout=180,
        interval=0.1,
    )
    timeline.promoted = time.monotonic()
    print(f"{survivor.name} promoted after {timeline.promoted - timeline.killed:.1f} s", flush=True)
    with suppress(TimeoutError):
        await asyncio.wait_for(load.recovered.wait(), timeout=180)
    await asyncio.sleep(args.after)
    stop.set()
    await clients
    return load, timeline
