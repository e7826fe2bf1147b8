"""The whole path through an SMPP carrier: accept over the API, dispatch through the
SMPP adapter to a real SMSC on loopback (another library's codec), receipts back as
deliver_sm, into the inbox, and the messages delivered."""

from __future__ import annotations

from tests import support, workers
from tests.providers.smsc import Smsc, reassemble

LONG_UCS2 = "Привет! Ваш заказ отправлен 📦🚚 " * 6  # three UCS-2 parts


async def test_two_thousand_messages_through_smpp_with_throttling_all_delivered(
    api, conn, settings, admin_headers
):
    smsc = Smsc(
        throttle_every=10, submit_id_form="hex", receipt_id_form="decimal", receipt_tlv=False
    )
    await smsc.start()
    try:
        put = await api.put(
            "/v1/admin/providers/carrier",
            json={
                "kind": "smpp",
                "config": {
                    "host": "127.0.0.1",
                    "port": smsc.port,
                    "system_id": smsc.system_id,
                    "password": smsc.password,
                    "window": 20,
                    "submit_id_base": 16,
                    "receipt_id_base": 10,
                    "throttle_pause_seconds": 0.05,
                },
            },
            headers=admin_headers,
        )
        assert put.status_code == 200, put.text
        route = await api.post(
            "/v1/admin/routes", json={"prefix": "+", "provider": "carrier"}, headers=admin_headers
        )
        assert route.status_code == 201
        tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
        for start in range(0, 2000, 1000):
            batch = [{"to": support.VALID_TO, "body": f"msg {start + i}"} for i in range(1000)]
            response = await api.post(
                "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
            )
            assert response.status_code == 202
        long_one = await support.send(api, tenant, body=LONG_UCS2, to=support.OTHER_TO)
        assert long_one.json()["segments"] == 3

        async with workers.in_process(
            settings, retry_base_seconds=0.05, retry_cap_seconds=0.5, breaker_min_requests=10**6
        ):

            async def all_delivered():
                cursor = await conn.execute(
                    "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
                )
                return (await cursor.fetchone())["n"] == 2001

            await workers.eventually(all_delivered, timeout=120)
    finally:
        await smsc.stop()
    throttled = [s for s in smsc.submits if s.status != 0]
    assert throttled  # the carrier did push back, and the gateway retried
    handsets = reassemble(smsc.submits, complete_only=True)
    accepted_texts = [text for _, text in handsets]
    assert sorted(t for t in accepted_texts if t.startswith("msg ")) == sorted(
        f"msg {i}" for i in range(2000)
    )
    assert (8, LONG_UCS2) in handsets
    cursor = await conn.execute(
        "SELECT count(DISTINCT provider_message_id) AS n FROM messages WHERE provider = 'carrier'"
    )
    assert (await cursor.fetchone())["n"] == 2001
    balance = await support.balance(api, tenant)
    assert balance["captured"] == 2000 * 7_900 + 3 * 7_900
