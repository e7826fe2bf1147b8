"""The consoles' journeys in a real headless Chromium (Debian's `chromium`, driven by
Playwright, as the dashboard's test does), against a real `smsgw api` and a worker: the
operator signs in, creates a tenant, tops it up and invites its owner; the owner sets a
password, signs in, makes an API key, sends a test message and watches it become
`delivered` without reloading, sees the spend chart, rotates the webhook secret; a forged
post and another tenant's message are refused; the operator revokes the owner's key and
the next API send is refused; both read their audit logs. The operator also caps the
tenant's daily spend, lifts a suspension, reads the alerts, edits a route in place and
uploads a provider's cost list. Every page is checked with
axe-core (vendored) for serious violations, and kept as a screenshot under
tests/artifacts/consoles/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests import support, workers
from tests.app.test_dashboard_browser import ARGS, ARTIFACTS, BROWSER, pytestmark  # noqa: F401
from tests.conftest import ADMIN_TOKEN

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
SHOTS = ARTIFACTS / "consoles"
OWNER = "owner@acme-retail.example"
PASSWORD = "a long enough passphrase"
AUTUMN = b"prefix,country,network,price\n1,US,,1100\n44,GB,,31000\n"


class Browsing:
    """One browser tab: each page it lands on is screenshotted, checked by axe-core and
    timed; scripts or styles the policy blocks show up as console errors."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.timings: dict[str, float] = {}
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    async def goto(self, path: str) -> Any:
        started = time.perf_counter()
        answer = await self.page.goto(f"{self.base}{path}")
        self.timings[path.split("?")[0]] = (time.perf_counter() - started) * 1000
        return answer

    async def check(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        # Evaluated through the DevTools protocol, not a <script>: the page's policy
        # forbids inline scripts, and this check must not weaken it.
        await self.page.evaluate(AXE)
        found = await self.page.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
            ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
            ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"
        )
        assert found == [], f"{name}: {found}"
        assert [e for e in self.errors if "Content Security Policy" in e] == [], self.errors


async def test_operator_and_owner_journeys(db_url, settings):
    from playwright.async_api import async_playwright, expect

    with workers.api_process(db_url) as base:
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as api,
            async_playwright() as p,
            workers.in_process(settings),
        ):
            browser = await p.chromium.launch(executable_path=BROWSER, args=ARGS)
            operator = Browsing(await (await browser.new_context()).new_page(), base)
            page = operator.page

            # The operator signs in: the token is exchanged for a session cookie.
            await operator.goto("/console/operator/sign-in")
            await operator.check("operator-sign-in")
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/console/operator/tenants")
            assert ADMIN_TOKEN not in await page.content()
            cookies = await page.context.cookies()
            session = next(c for c in cookies if c["name"] == "smsgw_console")
            assert session["httpOnly"]
            assert session["sameSite"] == "Lax"

            # Creates a tenant, opens it, tops it up, invites its owner.
            await page.fill("#name", "acme-retail")
            await page.select_option("#tier", "premium")
            await page.click("form.card button[type=submit]")
            await page.wait_for_selector("#new-api-key")
            await operator.check("operator-tenant-created")
            await page.click("#tenant-link")
            await page.fill("#amount", "25")
            await page.fill("#reference", "invoice-2026-001")
            await page.click("text=Add credit")
            await page.wait_for_selector("#saved")
            assert "25.00 USD" in await page.inner_text("#available")
            await page.fill("#email", OWNER)
            await page.click("text=Create invitation link")
            invitation = await page.inner_text("#invitation-link")
            await operator.check("operator-tenant")
            tenant_url = page.url.removesuffix("/invitations")
            await operator.goto("/console/operator/tenants?q=ACME")
            assert "acme-retail" in await page.inner_text("table")
            await operator.check("operator-tenants")
            await operator.goto("/console/operator/providers")
            await operator.check("operator-providers")
            # The audit log: the top-up and the invitation, by this console session.
            await operator.goto("/console/operator/audit")
            audited = await page.inner_text("#audit-table")
            assert "credit.topped_up" in audited
            assert "console_user.invited" in audited
            assert "operator-session:" in audited
            await operator.check("operator-audit")
            # A rate card: the file, its diff, then confirm.
            await operator.goto("/console/operator/rate-cards")
            await operator.check("operator-rate-cards")
            await page.fill("#card", "autumn")
            await page.set_input_files(
                "#file",
                files=[{"name": "autumn.csv", "mimeType": "text/csv", "buffer": AUTUMN}],
            )
            await page.click("text=Preview the changes")
            summary = await page.inner_text("#diff-summary")
            assert "2 added" in summary
            await operator.check("operator-rate-card-diff")
            await page.click("text=Confirm: write the new version")
            assert "2 rates" in await page.inner_text("#imported")
            await operator.check("operator-rate-card-imported")

            # The tenant's spend cap; a suspension of its sends to GB, lifted; the alerts.
            await page.goto(tenant_url)
            await page.fill("#daily_spend_cap", "5")
            await page.click("text=Save caps")
            await page.wait_for_selector("#exposure-saved")
            assert "of 5.00" in await page.inner_text("#spent")
            async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as db:
                await db.execute(
                    "INSERT INTO destination_suspensions (tenant_id, country, prefix, until,"
                    " cause) VALUES (%s, 'GB', '', now() + interval '1 hour',"
                    ' \'{"hour_count": 900, "hourly_limit": 300, "basis": "learned"}\')',
                    (tenant_url.rsplit("/", 1)[1],),
                )
            await operator.goto("/console/operator/suspensions")
            assert "900 messages in an hour" in await page.inner_text("#suspensions")
            await operator.check("operator-suspensions")
            await page.click("text=Lift GB")
            await page.wait_for_selector("#saved")
            await operator.goto("/console/operator/alerts")
            assert "destination.suspended" not in await page.inner_text("#events")
            await operator.check("operator-alerts")

            # The owner, in a browser of their own, accepts and sets a password.
            owner = Browsing(await (await browser.new_context()).new_page(), base)
            me = owner.page
            await me.goto(invitation)
            await owner.check("invitation")
            await me.fill("#password", PASSWORD)
            await me.click("button[type=submit]")
            await me.wait_for_url("**/console/")
            await me.click("text=Sign out")
            await me.wait_for_url("**/console/sign-in")
            await owner.check("sign-in")
            # By keyboard alone: the fields come in order after the skip link.
            await me.keyboard.press("Tab")
            assert await me.evaluate("document.activeElement.className") == "skip"
            await me.keyboard.press("Tab")
            await me.keyboard.type(OWNER)
            await me.keyboard.press("Tab")
            await me.keyboard.type(PASSWORD)
            await me.keyboard.press("Enter")
            await me.wait_for_url("**/console/")

            # An API key, shown once.
            await owner.goto("/console/keys")
            await me.click("text=Create an API key")
            key = await me.inner_text("#new-api-key")
            await owner.check("keys")
            headers = {"Authorization": f"Bearer {key}"}
            assert (await api.get("/v1/balance", headers=headers)).status_code == 200

            # A test message, delivered while the page stays the same page.
            await owner.goto("/console/send")
            await owner.check("send")
            await me.fill("#to", support.VALID_TO)
            await me.fill("#body", "Hello from the console")
            await me.click("button[type=submit]:has-text('Send')")
            await me.wait_for_url("**/console/messages/*")
            message_url = me.url
            await me.evaluate("window.stillThisPage = true")
            # (A locator, not wait_for_function: the page's policy forbids eval.)
            await expect(me.locator("#status")).to_have_text("delivered", timeout=30_000)
            assert await me.evaluate("window.stillThisPage === true")
            timeline = await me.inner_text(".timeline")
            for status in ("queued", "sent", "delivered"):
                assert status in timeline
            await owner.check("message")
            await owner.goto("/console/messages?status=delivered")
            assert "Hello from the console" in await me.inner_text("#messages-table")
            await owner.check("messages")

            # The spend chart has today's bar.
            await owner.goto("/console/")
            # The charts come after the page, from the reporting pool.
            await me.wait_for_selector("#spend-chart rect.bar", state="attached")
            heights = await me.locator("#spend-chart rect.bar").evaluate_all(
                "bars => bars.map(b => Number(b.getAttribute('height')))"
            )
            assert len(heights) >= 30
            assert heights[-1] > 0  # today
            await owner.check("overview")

            # The webhook signing secret rotates; the new one is shown once.
            await owner.goto("/console/webhooks")
            await me.click("text=Rotate the signing secret")
            secret = await me.inner_text("#new-secret")
            assert secret.startswith("whsec_")
            await owner.check("webhooks")
            await owner.goto("/console/numbers")
            await owner.check("numbers")
            await owner.goto("/console/suppressions")
            await owner.check("suppressions")
            await owner.goto("/console/team")
            assert OWNER in await me.inner_text("main")
            await owner.check("team")
            await owner.goto("/console/usage")
            await owner.check("usage")
            # The tenant's own audit log: the key made and the secret rotated, by the owner.
            await owner.goto("/console/audit")
            audited = await me.inner_text("#audit-table")
            for action in ("api_key.created", "webhook_secret.rotated", "console_user.joined"):
                assert action in audited
            assert key not in audited
            assert secret not in audited
            await owner.check("audit")

            # A post without the form's token is refused, and changes nothing.
            forged = await me.evaluate(
                "fetch('/console/keys', {method: 'POST', body: new URLSearchParams({x: '1'})})"
                ".then(r => r.status)"
            )
            assert forged == 403
            # And a form on another site, posted in the owner's browser: refused too.
            await owner.goto("/console/keys")
            live_keys = await me.locator("text=Revoke smsgw_").count()
            attacker = await me.context.new_page()
            await attacker.set_content(
                f'<form method="post" action="{base}/console/keys"><button>Win</button></form>'
            )
            await attacker.click("text=Win")
            await attacker.wait_for_load_state()
            assert "new-api-key" not in await attacker.content()
            await attacker.close()
            await owner.goto("/console/keys")
            assert await me.locator("text=Revoke smsgw_").count() == live_keys

            # Another tenant's message, by editing the URL: not found.
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            other = await support.make_tenant(api, admin, credit=5_000_000, name="other")
            theirs = await api.post(
                "/v1/messages",
                json={"to": support.OTHER_TO, "body": "private"},
                headers=other.headers,
            )
            assert message_url.startswith(f"{base}/console/messages/")
            answer = await owner.goto(f"/console/messages/{theirs.json()['id']}")
            assert answer.status == 404
            assert "No message has this id." in await me.inner_text("main")
            await owner.check("not-found")

            # At a phone's width nothing runs off the side.
            await me.set_viewport_size({"width": 375, "height": 800})
            await owner.goto("/console/messages")
            assert await me.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await owner.check("messages-phone")

            # The operator revokes the owner's key: the next API send is refused.
            await page.goto(tenant_url)
            # Today's traffic follows the page: the owner's test message, delivered.
            await page.wait_for_selector("#traffic table")
            assert "delivered" in await page.inner_text("#traffic")
            assert f"{OWNER}\towner\tactive" in await page.inner_text("#users")
            # The operator suspends the tenant: its next API send is refused, and the
            # owner's console says why; resumed, it sends again.
            await page.fill("#reason", "chargebacks under review")
            await page.click("text=Suspend acme-retail")
            await page.wait_for_selector("#suspended")
            await operator.check("operator-tenant-suspended")
            suspended = await api.post(
                "/v1/messages", json={"to": support.VALID_TO, "body": "held"}, headers=headers
            )
            assert suspended.status_code == 403
            assert suspended.json()["code"] == "tenant_suspended"
            await owner.goto("/console/")
            assert "chargebacks under review" in await me.inner_text("#suspended")
            await owner.check("overview-suspended")
            await page.click("text=Resume acme-retail")
            await page.wait_for_selector("#saved")
            assert await page.locator("#suspended").count() == 0
            await page.click(f"text=Revoke smsgw_{key.split('_')[1]}")
            await page.wait_for_selector("#saved")
            refused = await api.post(
                "/v1/messages", json={"to": support.VALID_TO, "body": "again"}, headers=headers
            )
            assert refused.status_code == 401

            # A route edited in place, and a provider's cost list (last: from here on
            # only +44 has a route).
            await api.put("/v1/admin/providers/sim2", json={"kind": "simulator"}, headers=admin)
            await api.post(
                "/v1/admin/routes", json={"prefix": "+44", "provider": "sim2"}, headers=admin
            )
            await operator.goto("/console/operator/providers")
            await page.click("text=Edit route +44 via sim2")
            await operator.check("operator-route")
            await page.fill("#priority", "7")
            await page.click("text=Save the route")
            await page.wait_for_selector("#saved")
            routes = (await api.get("/v1/admin/routes", headers=admin)).json()
            assert [r["priority"] for r in routes if r["provider"] == "sim2"] == [7]
            await page.click("text=Cost list of sim2")
            await operator.check("operator-cost-lists")
            await page.set_input_files(
                "#file",
                files=[{"name": "sim2.csv", "mimeType": "text/csv", "buffer": AUTUMN}],
            )
            await page.click("text=Preview the changes")
            assert "2 added" in await page.inner_text("#diff-summary")
            await page.click("text=Confirm: write the new version")
            assert "2 rates" in await page.inner_text("#imported")

            print("\nconsole page timings (ms, navigation incl. render):")
            for path, ms in {**operator.timings, **owner.timings}.items():
                print(f"  {path}: {ms:.0f}")
            print(f"screenshots: {SHOTS}")
            await browser.close()
