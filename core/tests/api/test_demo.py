"""``certctl serve --demo`` data: seeded once, a fresh working key per run, an ACME directory."""

from __future__ import annotations

from certctl.demo import DEMO_HOSTS, seed_demo


async def test_demo_seed_is_idempotent_and_serves_acme(client):
    first = await seed_demo(client.runtime)
    second = await seed_demo(client.runtime)
    assert first.api_key != second.api_key
    assert first.acme_profile_id == second.acme_profile_id is not None

    headers = {"Authorization": f"Bearer {second.api_key}"}
    r = await client.get("/api/v1/certificates", headers=headers)
    assert r.status_code == 200, r.text
    certs = r.json()["data"]
    assert sorted(c["common_name"] for c in certs) == sorted(DEMO_HOSTS)  # not seeded twice
    assert {c["status"] for c in certs} == {"active"}

    r = await client.get(f"/acme/profile/{second.acme_profile_id}/directory")
    assert r.status_code == 200, r.text
    assert r.json()["newOrder"].endswith(f"/acme/profile/{second.acme_profile_id}/new-order")
