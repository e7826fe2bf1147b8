"""Inbound messages from an SMPP carrier: a worker holds the bind from its start, takes
the deliver_sm that are not receipts, reassembles a long one and posts it to the tenant's
webhook, signed; a STOP sent the same way opts the handset out."""

from __future__ import annotations

import json
import time

import smpp34

from core import callbacks
from tests import httpd, support, two_way, workers
from tests.providers.smsc import Smsc
from tests.two_way import HANDSET, OUR_NUMBER

TEXT = "Привет 📦 мир"


async def test_smpp_mobile_originated_messages_reach_the_webhook_whole_and_signed(
    api, conn, settings, admin_headers, tenant
):
    smsc = Smsc()
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
                },
            },
            headers=admin_headers,
        )
        assert put.status_code == 200, put.text
        await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
        with httpd.serve() as hook:
            await two_way.configure(api, admin_headers, tenant, inbound_url=hook.url)
            async with workers.in_process(settings):

                async def bound():
                    return any(bind.accepted for bind in smsc.binds)

                await workers.eventually(bound)
                octets = TEXT.encode("utf-16-be")
                # Split inside the emoji's surrogate pair: only joined octets decode.
                cut = TEXT.index("📦") * 2 + 2
                for number, chunk in ((2, octets[cut:]), (1, octets[:cut])):
                    status = await smsc.deliver(
                        smpp34.DeliverSm(
                            HANDSET.removeprefix("+"),
                            OUR_NUMBER.removeprefix("+"),
                            bytes([5, 0, 3, 0x2A, 2, number]) + chunk,
                            esm_class=0x40,
                            data_coding=8,
                        )
                    )
                    assert status == 0
                stop = smpp34.DeliverSm(
                    HANDSET.removeprefix("+"), OUR_NUMBER.removeprefix("+"), b"STOP"
                )
                assert await smsc.deliver(stop) == 0

                async def two_posted():
                    return len(hook.received) >= 2 and hook.received

                received = await workers.eventually(two_posted)
    finally:
        await smsc.stop()
    bodies = []
    for request in received:
        assert callbacks.verify(
            tenant.webhook_secret,
            request.body,
            request.headers["x-smsgw-signature"],
            now=int(time.time()),
        )
        bodies.append(json.loads(request.body))
    by_text = {b["body"]: b for b in bodies}
    assert set(by_text) == {TEXT, "STOP"}
    whole = by_text[TEXT]
    assert (whole["from"], whole["to"], whole["provider"]) == (HANDSET, OUR_NUMBER, "carrier")
    assert (whole["parts"], whole["complete"], whole["encoding"]) == (2, True, "UCS-2")
    assert by_text["STOP"]["keyword"] == "opt_out"
    refused = await support.send(api, tenant, to=HANDSET, **{"from": OUR_NUMBER})
    support.assert_problem(refused, 422, "recipient_opted_out")
