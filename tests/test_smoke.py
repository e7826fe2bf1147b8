from tests import support


async def test_send_and_read_back(api, tenant):
    sent = await support.send(api, tenant)
    assert sent.status_code == 202, sent.text
    got = await api.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json()["status"] == "queued"
