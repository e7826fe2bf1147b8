"""The gateway on the formation: `smsgw migrate`, `smsgw api` and `smsgw worker` on its
multi-host URL, and the tenant the clients send as."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ops.drills.failover.formation import FailoverError
from smsgw.processes import StartError, free_port, smsgw_command, stop_all, wait_http

CREDIT = 10**12  # micro-units: far more than the run can spend


def gateway_env(url: str, admin_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "PG"))}
    env.update(
        {
            "DATABASE_URL": url,
            "SMSGW_ADMIN_TOKEN": admin_token,
            "SMSGW_LOG_JSON": "true",
            "SMSGW_SIMULATOR_SEED": "1",
            "SMSGW_SIMULATOR_DLR_DELAY_SECONDS": "0.5",
            # Messages claimed on the dead primary are sent again once their lease
            # lapses; a short lease keeps the run short.
            "SMSGW_LEASE_SECONDS": "15",
        }
    )
    return env


@dataclass
class Gateway:
    """`smsgw migrate`, then `smsgw api` and one `smsgw worker`, all on ``url``."""

    url: str
    logs: Path
    port: int = field(default_factory=lambda: free_port(18400))
    admin_token: str = field(default_factory=secrets.token_urlsafe)
    api: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{args[0]}.log").open("ab") as log:
            return subprocess.Popen(
                smsgw_command(*args),
                env=gateway_env(self.url, self.admin_token),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self) -> None:
        migrate = subprocess.run(
            smsgw_command("migrate"),
            env=gateway_env(self.url, self.admin_token),
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise FailoverError(f"smsgw migrate failed:\n{migrate.stderr[-2000:]}")
        self.api = self._spawn("api", "--port", str(self.port))
        self.worker = self._spawn("worker")
        try:
            wait_http(f"{self.base}/ready", watch=[self.api], timeout=60)
        except StartError:
            raise FailoverError(f"the API did not become ready; see {self.logs}/api.log") from None

    def stop(self) -> None:
        stop_all([p for p in (self.worker, self.api) if p is not None], timeout=30)


async def make_tenant(gateway: Gateway) -> str:
    admin = {"Authorization": f"Bearer {gateway.admin_token}"}
    async with httpx.AsyncClient(base_url=gateway.base, headers=admin, timeout=30) as client:
        created = await client.post("/v1/admin/tenants", json={"name": "failover"})
        created.raise_for_status()
        tenant = created.json()
        credited = await client.post(
            f"/v1/admin/tenants/{tenant['id']}/credits",
            json={"amount": CREDIT, "reference": "failover"},
        )
        credited.raise_for_status()
        return str(tenant["api_key"])
