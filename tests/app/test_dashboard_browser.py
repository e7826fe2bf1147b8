"""The operator dashboard in a real headless Chromium (Debian's `chromium`, driven by
Playwright): sign in with the admin token, watch the charts move while messages flow,
and keep a screenshot."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from tests import support, workers
from tests.conftest import ADMIN_TOKEN

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

BROWSER = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="Debian's chromium is not installed (ops/test installs it with apt-get as root; "
    "as another user: apt-get install chromium)",
)


def js_series(name: str, index: int) -> str:
    return f"window.smsgwDashboard.{name}.y[{index}]"


async def test_dashboard_signs_in_and_charts_live_traffic(db_url, settings):
    from playwright.async_api import async_playwright

    with workers.api_process(db_url) as base:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            tenants = [
                await support.make_tenant(api, admin, credit=50_000_000, name=name, tier=tier)
                for name, tier in (("acme-retail", "standard"), ("bigbank", "vip"))
            ]

            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=BROWSER, args=ARGS)
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                problems: list[str] = []
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type == "error" else None,
                )
                await page.goto(f"{base}/dashboard")

                # A wrong token is refused and the board stays hidden.
                await page.fill("#token", "not-the-token")
                await page.click("button[type=submit]")
                await page.wait_for_function(
                    "document.getElementById('login-error').textContent.length > 0"
                )
                assert await page.is_hidden("#board")

                await page.fill("#token", ADMIN_TOKEN)
                await page.click("button[type=submit]")
                await page.wait_for_selector("#board", state="visible")
                await page.wait_for_function("window.smsgwDashboard.polls >= 1")
                assert await page.inner_text("#total-sent") == "0"

                # A backlog with no worker running: the queue chart rises.
                for handle, count in zip(tenants, (300, 120), strict=True):
                    batch = {"messages": [{"to": support.VALID_TO, "body": "hi"}] * count}
                    sent = await api.post("/v1/messages/batch", json=batch, headers=handle.headers)
                    assert sent.status_code == 202, sent.text
                await page.wait_for_function(
                    f"{js_series('queue', 2)}.some(v => v === 300)"  # the standard tier
                )
                await page.wait_for_function(f"{js_series('queue', 0)}.some(v => v === 120)")

                # A worker starts and traffic keeps flowing: throughput rises, the queue
                # drains, the busiest tenants show up.
                async def keep_sending() -> None:
                    for _ in range(8):
                        batch = {"messages": [{"to": support.OTHER_TO, "body": "live"}] * 25}
                        await api.post("/v1/messages/batch", json=batch, headers=tenants[0].headers)
                        await asyncio.sleep(0.4)

                async with workers.in_process(settings):
                    flow = asyncio.create_task(keep_sending())
                    await page.wait_for_function(f"{js_series('throughput', 1)}.some(v => v > 0)")
                    await flow
                    await page.wait_for_function(
                        "Number(document.getElementById('total-sent').textContent"
                        ".replace(/,/g, '')) === 620"
                    )
                    drained = " && ".join(f"{js_series('queue', i)}.at(-1) === 0" for i in (0, 2))
                    await page.wait_for_function(drained)
                    await page.wait_for_function(
                        "window.smsgwDashboard.charts.tenants.data[1].length === 2"
                    )
                    await page.wait_for_function(
                        "document.querySelector('#providers-table tbody').textContent"
                        ".includes('simulator')"
                    )

                tenant_names = await page.evaluate("window.smsgwDashboard.charts.tenants.names")
                assert tenant_names == ["acme-retail", "bigbank"]
                breaker = await page.inner_text("#providers-table tbody .badge")
                assert breaker == "closed"
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / "dashboard.png"
                await page.screenshot(path=str(shot), full_page=True)
                print(f"\ndashboard screenshot: {shot}")
                await browser.close()
