"""Compliance policy rules over REST: seeded rules, typed configs, violations on write and scan."""

import pytest

from certctl.domain.compliance.service import evaluate_compliance

SEEDED = {
    "require-owner": ("RequiredMetadata", "Warning", {"required_keys": ["owner"]}),
    "allowed-environments": (
        "AllowedEnvironments",
        "Error",
        {"allowed": ["production", "staging", "development"]},
    ),
    "max-certificate-lifetime": ("CertificateLifetime", "Critical", {"max_days": 90}),
    "min-renewal-window": ("RenewalLeadTime", "Warning", {"lead_time_days": 14}),
}


@pytest.fixture
async def issuer(client, admin_headers):
    r = await client.post(
        "/api/v1/issuers",
        json={"name": "local-ca", "type": "local", "config": {}},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def rules(client, headers):
    r = await client.get("/api/v1/policies", headers=headers)
    assert r.status_code == 200, r.text
    return {p["name"]: p for p in r.json()["data"]}


async def violations_of(client, headers, cert_id):
    r = await client.get(f"/api/v1/certificates/{cert_id}/violations", headers=headers)
    assert r.status_code == 200, r.text
    return {v["rule_name"]: v for v in r.json()["data"]}


async def new_cert(client, headers, issuer, **body):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "www.example.test", "issuer_id": issuer, **body},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    return r.json()["certificate"]["id"]


async def test_the_reference_rules_are_seeded(client, viewer_headers):
    seeded = await rules(client, viewer_headers)
    assert {n: (p["type"], p["severity"], p["config"]) for n, p in seeded.items()} == SEEDED
    assert all(p["enabled"] for p in seeded.values())


async def test_violations_are_recorded_on_create_and_cleared_on_update(
    client, admin_headers, viewer_headers, issuer
):
    cert_id = await new_cert(client, admin_headers, issuer, validity_days=365)
    found = await violations_of(client, viewer_headers, cert_id)
    assert set(found) == {"require-owner", "allowed-environments", "max-certificate-lifetime"}
    assert found["max-certificate-lifetime"]["severity"] == "Critical"
    assert "365.0 days exceeds 90" in found["max-certificate-lifetime"]["message"]
    assert "owner" in found["require-owner"]["message"]
    first_seen = found["require-owner"]["first_seen_at"]

    rule_id = (await rules(client, viewer_headers))["require-owner"]["id"]
    r = await client.get(f"/api/v1/policies/{rule_id}/violations", headers=viewer_headers)
    assert r.status_code == 200
    assert [v["certificate_id"] for v in r.json()["data"]] == [cert_id]

    audit = (
        await client.get(
            "/api/v1/audit",
            params={"action": "policy.violation_detected", "resource_id": cert_id},
            headers=admin_headers,
        )
    ).json()["data"]
    assert {e["details"]["rule_name"] for e in audit} == set(found)
    assert {e["details"]["severity"] for e in audit} == {"Warning", "Error", "Critical"}

    r = await client.put(
        f"/api/v1/certificates/{cert_id}",
        json={"tags": {"owner": "team-a"}},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    found = await violations_of(client, viewer_headers, cert_id)
    assert set(found) == {"allowed-environments", "max-certificate-lifetime"}

    r = await client.put(
        f"/api/v1/certificates/{cert_id}", json={"environment": "production"}, headers=admin_headers
    )
    assert set(await violations_of(client, viewer_headers, cert_id)) == {"max-certificate-lifetime"}
    resolved = (
        await client.get(
            "/api/v1/audit",
            params={"action": "policy.violation_resolved", "resource_id": cert_id},
            headers=admin_headers,
        )
    ).json()["data"]
    assert len(resolved) == 2

    # Re-evaluating keeps a standing violation's first sighting and does not audit it again.
    await client.put(
        f"/api/v1/certificates/{cert_id}", json={"environment": "x"}, headers=admin_headers
    )
    again = await violations_of(client, viewer_headers, cert_id)
    assert again["allowed-environments"]["first_seen_at"] >= first_seen
    assert await evaluate_compliance(client.runtime) == 1
    audit = (
        await client.get(
            "/api/v1/audit",
            params={"action": "policy.violation_detected", "resource_id": cert_id},
            headers=admin_headers,
        )
    ).json()["data"]
    assert len(audit) == 4  # three at creation, the environment once more after it was fixed


async def test_scan_finds_time_based_violations(client, admin_headers, viewer_headers, issuer):
    cert_id = await new_cert(
        client,
        admin_headers,
        issuer,
        validity_days=10,
        environment="production",
        tags={"owner": "ops"},
    )
    assert await violations_of(client, viewer_headers, cert_id) == {}
    await client.runtime.worker.drain()  # issued: it now expires in ten days
    assert await evaluate_compliance(client.runtime) == 1
    found = await violations_of(client, viewer_headers, cert_id)
    assert set(found) == {"min-renewal-window"}
    assert "14-day renewal lead time" in found["min-renewal-window"]["message"]

    # Disabling the rule clears what it reported; a later scan does not bring it back.
    rule_id = (await rules(client, viewer_headers))["min-renewal-window"]["id"]
    r = await client.put(
        f"/api/v1/policies/{rule_id}", json={"enabled": False}, headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert await violations_of(client, viewer_headers, cert_id) == {}
    await evaluate_compliance(client.runtime)
    assert await violations_of(client, viewer_headers, cert_id) == {}


async def test_scan_walks_every_certificate_in_batches(
    client, admin_headers, viewer_headers, issuer
):
    r = await client.post(
        "/api/v1/certificates/bulk",
        json={
            "certificates": [
                {"common_name": f"h{i}.example.test", "issuer_id": issuer, "environment": "lab"}
                for i in range(7)
            ]
        },
        headers=admin_headers,
    )
    assert r.status_code == 202
    ids = [c["certificate"]["id"] for c in r.json()]
    rule = (await rules(client, viewer_headers))["allowed-environments"]
    r = await client.put(
        f"/api/v1/policies/{rule['id']}",
        json={"config": {"allowed": ["lab"]}},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert await evaluate_compliance(client.runtime, batch=3) == 7
    r = await client.get(f"/api/v1/policies/{rule['id']}/violations", headers=viewer_headers)
    assert r.json()["total"] == 0
    for cert_id in ids:
        assert "allowed-environments" not in await violations_of(client, viewer_headers, cert_id)

    await client.delete(f"/api/v1/certificates/{ids[0]}", headers=admin_headers)
    assert await evaluate_compliance(client.runtime, batch=3) == 6
    assert await violations_of(client, viewer_headers, ids[0]) == {}


async def test_each_rule_type(client, admin_headers, viewer_headers, issuer):
    for r in (await rules(client, viewer_headers)).values():
        await client.delete(f"/api/v1/policies/{r['id']}", headers=admin_headers)
    other = await client.post(
        "/api/v1/issuers",
        json={"name": "other", "type": "local", "config": {}},
        headers=admin_headers,
    )
    created = {}
    for name, type_, config in (
        ("issuers", "AllowedIssuers", {"allowed_issuer_ids": [other.json()["id"]]}),
        ("domains", "AllowedDomains", {"allowed_domains": ["*.example.test"]}),
        ("tags", "RequiredMetadata", {"required_keys": ["owner", "cost-centre"]}),
        ("envs", "AllowedEnvironments", {"allowed": ["production"]}),
        ("lead", "RenewalLeadTime", {}),
        ("life", "CertificateLifetime", {"max_days": 30}),
    ):
        r = await client.post(
            "/api/v1/policies",
            json={"name": name, "type": type_, "config": config, "severity": "Error"},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        created[name] = r.json()
    assert created["lead"]["config"] == {"lead_time_days": 30}, "defaults are filled in"

    bad = await new_cert(
        client,
        admin_headers,
        issuer,
        sans=["api.example.test", "www.other.test"],
        tags={"owner": "x"},
        environment="staging",
        validity_days=20,
    )
    await client.runtime.worker.drain()
    await evaluate_compliance(client.runtime)
    found = await violations_of(client, viewer_headers, bad)
    assert set(found) == {"issuers", "domains", "tags", "envs", "lead"}
    assert "www.other.test" in found["domains"]["message"]
    assert "api.example.test" not in found["domains"]["message"]
    assert "cost-centre" in found["tags"]["message"]

    good = await new_cert(
        client,
        admin_headers,
        other.json()["id"],
        tags={"owner": "x", "cost-centre": "42"},
        environment="production",
        validity_days=90,
    )
    found = await violations_of(client, viewer_headers, good)
    assert set(found) == {"life"}, "a 90-day request exceeds the 30-day lifetime rule"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"type": "AllowedDomains", "config": {}}, "allowed_domains"),
        ({"type": "AllowedDomains", "config": {"allowed_domains": []}}, "allowed_domains"),
        ({"type": "AllowedDomains", "config": {"allowed_domains": ["a*.b.test"]}}, "pattern"),
        ({"type": "RequiredMetadata", "config": {"required_key": ["owner"]}}, "required_key"),
        ({"type": "RenewalLeadTime", "config": {"lead_time_days": "soon"}}, "lead_time_days"),
        ({"type": "RenewalLeadTime", "config": {"lead_time_days": 0}}, "lead_time_days"),
        ({"type": "CertificateLifetime", "config": {}}, "max_days"),
        ({"type": "AllowedEnvironments", "config": {"allowed": "production"}}, "allowed"),
        ({"type": "AllowedIssuers", "config": {"allowed_issuer_ids": ["iss-nope"]}}, "iss-nope"),
        ({"type": "Nonsense", "config": {}}, "type"),
        ({"type": "RenewalLeadTime", "severity": "Meh"}, "severity"),
    ],
)
async def test_malformed_rules_are_400_and_write_nothing(client, admin_headers, body, needle):
    r = await client.post("/api/v1/policies", json={"name": "bad", **body}, headers=admin_headers)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert needle in problem["detail"] + repr(problem.get("errors", ""))
    assert "bad" not in await rules(client, admin_headers)


async def test_update_revalidates_against_the_resulting_type(client, admin_headers):
    rule = (await rules(client, admin_headers))["min-renewal-window"]
    r = await client.put(
        f"/api/v1/policies/{rule['id']}",
        json={"type": "CertificateLifetime"},
        headers=admin_headers,
    )
    assert r.status_code == 400 and "CertificateLifetime" in r.json()["detail"]
    r = await client.put(
        f"/api/v1/policies/{rule['id']}", json={"config": {"max_days": 5}}, headers=admin_headers
    )
    assert r.status_code == 400
    r = await client.put(
        f"/api/v1/policies/{rule['id']}",
        json={"type": "CertificateLifetime", "config": {"max_days": 5}, "severity": "Critical"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["type"], r.json()["config"], r.json()["severity"]) == (
        "CertificateLifetime",
        {"max_days": 5},
        "Critical",
    )
    r = await client.put(
        f"/api/v1/policies/{rule['id']}", json={"name": "require-owner"}, headers=admin_headers
    )
    assert r.status_code == 409


async def test_crud_paging_and_permissions(client, admin_headers, viewer_headers):
    body = {"name": "envs", "type": "AllowedEnvironments", "config": {"allowed": ["prod"]}}
    r = await client.post("/api/v1/policies", json=body, headers=viewer_headers)
    assert r.status_code == 403
    r = await client.post("/api/v1/policies", json=body, headers=admin_headers)
    assert r.status_code == 201
    created = r.json()
    assert created["id"].startswith("rule-") and created["severity"] == "Warning"
    assert (
        await client.post("/api/v1/policies", json=body, headers=admin_headers)
    ).status_code == 409
    r = await client.get(f"/api/v1/policies/{created['id']}", headers=viewer_headers)
    assert r.json() == created

    r = await client.get(
        "/api/v1/policies", params={"type": "AllowedEnvironments"}, headers=viewer_headers
    )
    assert {p["name"] for p in r.json()["data"]} == {"envs", "allowed-environments"}
    r = await client.get(
        "/api/v1/policies", params={"per_page": 2, "page": 3}, headers=viewer_headers
    )
    assert r.json()["total"] == 5 and len(r.json()["data"]) == 1
    assert (
        await client.get("/api/v1/policies", params={"type": "x"}, headers=viewer_headers)
    ).status_code == 400

    assert (
        await client.delete(f"/api/v1/policies/{created['id']}", headers=viewer_headers)
    ).status_code == 403
    assert (
        await client.delete(f"/api/v1/policies/{created['id']}", headers=admin_headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/v1/policies/{created['id']}", headers=admin_headers)
    ).status_code == 404
    r = await client.get(f"/api/v1/policies/{created['id']}/violations", headers=admin_headers)
    assert r.status_code == 404
    r = await client.get("/api/v1/certificates/mc-nope/violations", headers=admin_headers)
    assert r.status_code == 404
