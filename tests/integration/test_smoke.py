from tests.conftest import AUTH
from tests.payloads import notification


async def test_alert_becomes_incident(client):
    resp = await client.post("/api/v1/alerts", json=notification(), headers=AUTH)
    assert resp.status == 200
    resp = await client.get("/api/v1/incidents", headers=AUTH)
    assert len((await resp.json())["items"]) == 1
