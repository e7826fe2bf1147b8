"""The operator's exposure controls in the console (issue 28 with issue 25's controls): a
tenant's spend caps and geo permissions on its page, the suspended destinations (lift
one), the alerts and event log. Each change is checked by what the API then does (a send
refused or accepted) and by its audit row, written by the console user."""

from __future__ import annotations

import json
from typing import Any

from tests import support
from tests.app.audited_routes import _last_id, _rows
from tests.app.test_consoles import operator_signed_in
from tests.support import VALID_TO, assert_problem

GB_TO = "+447400123456"  # a UK mobile (libphonenumber: GB; +447911... is Guernsey)


async def _audited(conn: Any, last: int) -> list[dict[str, Any]]:
    return await _rows(
        conn, "SELECT action, actor_kind, before, after FROM audit_events WHERE id > %s", last
    )


async def test_the_operator_caps_a_tenants_spend_and_sends_past_it_are_refused(
    api, conn, admin_headers, tenant
):
    csrf = await operator_signed_in(api)
    page = f"/console/operator/tenants/{tenant.id}"
    last = await _last_id(conn)
    # A standard tenant pays 0.0079 a message: the daily cap of 0.01 takes one.
    saved = await api.post(
        page + "/caps",
        data={"daily_spend_cap": "0.01", "monthly_spend_cap": "", "csrf_token": csrf},
        follow_redirects=True,
    )
    assert saved.status_code == 200, saved.text
    assert "Spend caps saved." in saved.text
    view = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert (view["daily_spend_cap"], view["monthly_spend_cap"]) == (10_000, None)
    [row] = await _audited(conn, last)
    assert (row["action"], row["actor_kind"]) == ("tenant_limits.updated", "console_user")
    assert (row["before"], row["after"]) == ({"daily_spend_cap": None}, {"daily_spend_cap": 10_000})
    assert (await support.send(api, tenant)).status_code == 202
    assert_problem(await support.send(api, tenant), 402, "spend_limit_reached")
    shown = await api.get(page)
    assert 'value="0.01"' in shown.text
    assert "Spent today 0.0079 of 0.01" in " ".join(shown.text.split())
    assert "none (no alerts URL)" in shown.text
    await api.patch(
        f"/v1/admin/tenants/{tenant.id}",
        json={"alerts_url": "https://hooks.example.com/alerts", "low_balance_threshold": 2_000_000},
        headers=admin_headers,
    )
    alerting = " ".join((await api.get(page)).text.split())
    assert "to <code>https://hooks.example.com/alerts</code>" in alerting
    assert "falls under 2.00" in alerting
    # Emptied: no cap, and the next send goes.
    await api.post(
        page + "/caps",
        data={"daily_spend_cap": "", "monthly_spend_cap": "", "csrf_token": csrf},
    )
    assert (await support.send(api, tenant)).status_code == 202


async def test_bad_or_forged_caps_change_nothing(api, conn, admin_headers, tenant):
    csrf = await operator_signed_in(api)
    url = f"/console/operator/tenants/{tenant.id}/caps"
    last = await _last_id(conn)
    bad = await api.post(
        url, data={"daily_spend_cap": "lots", "monthly_spend_cap": "5", "csrf_token": csrf}
    )
    assert bad.status_code == 422
    assert "daily_spend_cap" in bad.text
    huge = await api.post(
        url, data={"daily_spend_cap": "", "monthly_spend_cap": "2000000000", "csrf_token": csrf}
    )
    assert huge.status_code == 422
    assert "monthly_spend_cap" in huge.text
    forged = await api.post(url, data={"daily_spend_cap": "1", "monthly_spend_cap": ""})
    assert forged.status_code == 403
    unknown = await api.post(
        "/console/operator/tenants/00000000-0000-0000-0000-000000000000/caps",
        data={"daily_spend_cap": "1", "monthly_spend_cap": "", "csrf_token": csrf},
    )
    assert unknown.status_code == 404
    view = (await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)).json()
    assert (view["daily_spend_cap"], view["monthly_spend_cap"]) == (None, None)
    assert await _audited(conn, last) == []


async def test_the_operator_limits_where_a_tenant_may_send(api, conn, admin_headers, tenant):
    csrf = await operator_signed_in(api)
    url = f"/console/operator/tenants/{tenant.id}/geo-permissions"
    last = await _last_id(conn)
    saved = await api.post(
        url,
        data={
            "scope": "listed",
            "countries": "gb, ie",
            "high_risk_enabled": "",
            "csrf_token": csrf,
        },
        follow_redirects=True,
    )
    assert "Geo permissions saved." in saved.text
    assert 'value="GB, IE"' in saved.text
    geo = await api.get(f"/v1/admin/tenants/{tenant.id}/geo-permissions", headers=admin_headers)
    assert geo.json()["countries"] == ["GB", "IE"]
    assert_problem(await support.send(api, tenant), 422, "destination_not_permitted")
    gb = await support.send(api, tenant, to=GB_TO)
    assert gb.status_code == 202, gb.text
    bad = await api.post(url, data={"scope": "listed", "countries": "GB XX", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "countries[1]" in bad.text
    await api.post(url, data={"scope": "all", "countries": "GB", "csrf_token": csrf})
    assert (await support.send(api, tenant, to=VALID_TO)).status_code == 202
    rows = await _audited(conn, last)
    assert [r["action"] for r in rows] == ["geo_permissions.set"] * 2
    assert rows[0]["before"]["countries"] is None
    assert rows[0]["after"]["countries"] == ["GB", "IE"]
    assert rows[1]["after"]["countries"] is None


async def _suspend(conn: Any, tenant_id: str, country: str = "GB") -> str:
    cause = {"hour_count": 812, "hourly_limit": 300, "basis": "country_limit", "median": None}
    cursor = await conn.execute(
        "INSERT INTO destination_suspensions (tenant_id, country, prefix, until, cause)"
        " VALUES (%s, %s, '', now() + interval '12 hours', %s) RETURNING id",
        (tenant_id, country, json.dumps(cause)),
    )
    return str((await cursor.fetchone())["id"])


async def test_the_operator_lifts_a_suspension_and_sends_go_again(api, conn, tenant):
    suspension = await _suspend(conn, tenant.id)
    assert_problem(await support.send(api, tenant, to=GB_TO), 429, "destination_suspended")
    csrf = await operator_signed_in(api)
    listed = await api.get("/console/operator/suspensions")
    text = " ".join(listed.text.split())
    assert "812 messages in an hour, over the operator&#39;s limit for the country of 300" in text
    assert f'/console/operator/suspensions/{suspension}/lift"' in listed.text
    assert "GB" in (await api.get(f"/console/operator/tenants/{tenant.id}")).text
    last = await _last_id(conn)
    lifted = await api.post(
        f"/console/operator/suspensions/{suspension}/lift",
        data={"csrf_token": csrf},
        follow_redirects=True,
    )
    assert lifted.status_code == 200, lifted.text
    assert "Suspension lifted" in lifted.text
    assert "No destination is suspended." in lifted.text
    assert (await support.send(api, tenant, to=GB_TO)).status_code == 202
    [row] = await _audited(conn, last)
    assert (row["action"], row["actor_kind"]) == ("suspension.lifted", "console_user")
    assert row["after"]["lifted_by"] == "operator"
    # Ended ones are listed on request, with who lifted them; a second lift finds none.
    ended = await api.get("/console/operator/suspensions", params={"ended": "true"})
    assert "lifted by operator" in ended.text
    again = await api.post(
        f"/console/operator/suspensions/{suspension}/lift", data={"csrf_token": csrf}
    )
    assert again.status_code == 404
    assert await _audited(conn, last + 1) == []


async def test_suspensions_filter_by_tenant_and_a_forged_lift_is_refused(
    api, conn, admin_headers, tenant
):
    other = await support.make_tenant(api, admin_headers, name="other")
    mine, theirs = await _suspend(conn, tenant.id), await _suspend(conn, other.id, "FR")
    await operator_signed_in(api)
    both = await api.get("/console/operator/suspensions")
    assert mine in both.text
    assert theirs in both.text
    only = await api.get("/console/operator/suspensions", params={"tenant": other.id})
    assert theirs in only.text
    assert mine not in only.text
    bad = await api.get("/console/operator/suspensions", params={"tenant": "nope"})
    assert bad.status_code == 422
    forged = await api.post(f"/console/operator/suspensions/{mine}/lift")
    assert forged.status_code == 403
    assert_problem(await support.send(api, tenant, to=GB_TO), 429, "destination_suspended")


async def test_the_alerts_page_shows_firing_delivery_rates_and_the_event_log(api, conn):
    await conn.execute(
        "INSERT INTO delivery_alerts (country, provider, evaluated_at, hour_known, hour_rate,"
        " week_known, week_rate, firing, since) VALUES"
        " ('NG', 'agg', now(), 400, 0.41, 9000, 0.93, true, now() - interval '1 hour'),"
        " ('GB', 'agg', now(), 900, 0.97, 9000, 0.96, false, NULL)"
    )
    await conn.execute(
        "INSERT INTO operator_events (kind, detail) VALUES"
        ' (\'delivery_rate.dropped\', \'{"country": "NG", "provider": "agg"}\'),'
        ' (\'destination.suspended\', \'{"country": "FR", "prefix": "3375"}\')'
    )
    await operator_signed_in(api)
    shown = await api.get("/console/operator/alerts")
    assert shown.status_code == 200
    firing = shown.text[shown.text.index('id="firing"') : shown.text.index('id="events"')]
    assert "NG" in firing
    assert "41.0% of 400" in firing
    assert "GB" not in firing
    events = shown.text[shown.text.index('id="events"') :]
    assert events.index("destination.suspended") < events.index("delivery_rate.dropped")
    only = await api.get("/console/operator/alerts", params={"kind": "destination.suspended"})
    listed = only.text[only.text.index('id="events"') :]
    assert "3375" in listed
    assert "delivery_rate.dropped</td>" not in listed
    assert (await api.get("/console/operator/alerts")).headers["content-security-policy"]


async def test_the_exposure_pages_need_the_operators_session(api, tenant):
    for url in ("/console/operator/suspensions", "/console/operator/alerts"):
        assert (await api.get(url)).status_code == 303
