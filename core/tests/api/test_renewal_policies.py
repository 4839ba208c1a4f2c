"""Renewal policies: CRUD and its bounds, and what policies do to issued certificates."""

from datetime import timedelta

import pytest


async def _issuer(client, headers):
    r = await client.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _policy(client, headers, **fields):
    r = await client.post(
        "/api/v1/renewal-policies", json={"name": "web prod", **fields}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_defaults_get_list_update_delete(client, admin_headers, viewer_headers):
    created = await _policy(client, admin_headers)
    assert created["id"] == "rp-web-prod"
    assert created["renewal_window_days"] == 30 and created["auto_renew"] is True
    assert created["alert_thresholds_days"] == [30, 14, 7, 0]
    assert created["alert_severity_map"] == {
        "30": "info",
        "14": "warning",
        "7": "warning",
        "0": "critical",
    }
    assert (created["max_retries"], created["retry_interval_seconds"]) == (3, 3600)
    assert (created["jitter_percent"], created["renew_fraction"]) == (10, None)
    assert created["alert_notifier_ids"] == [] and created["notify_events"] == []

    r = await client.get("/api/v1/renewal-policies/rp-web-prod", headers=viewer_headers)
    assert r.status_code == 200 and r.json() == created
    listed = (await client.get("/api/v1/renewal-policies", headers=viewer_headers)).json()
    assert listed["total"] == 1 and listed["data"] == [created]

    r = await client.post(
        "/api/v1/renewal-policies", json={"name": "viewer"}, headers=viewer_headers
    )
    assert r.status_code == 403
    r = await client.put(
        "/api/v1/renewal-policies/rp-web-prod",
        json={"renewal_window_days": 10, "alert_thresholds_days": [10, 1], "renew_fraction": 0.5},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["renewal_window_days"], body["renew_fraction"]) == (10, 0.5)
    assert body["alert_severity_map"] == {"10": "warning", "1": "warning"}
    r = await client.put(
        "/api/v1/renewal-policies/rp-web-prod", json={"renew_fraction": 0}, headers=admin_headers
    )
    assert r.json()["renew_fraction"] is None

    r = await client.delete("/api/v1/renewal-policies/rp-web-prod", headers=viewer_headers)
    assert r.status_code == 403
    r = await client.delete("/api/v1/renewal-policies/rp-web-prod", headers=admin_headers)
    assert r.status_code == 204
    r = await client.get("/api/v1/renewal-policies/rp-web-prod", headers=admin_headers)
    assert r.status_code == 404
    actions = [
        e["action"]
        for e in (await client.get("/api/v1/audit", headers=admin_headers)).json()["data"]
    ]
    for action in ("renewal_policy.create", "renewal_policy.update", "renewal_policy.delete"):
        assert action in actions


async def test_duplicate_names_and_slugs_are_409(client, admin_headers):
    await _policy(client, admin_headers)
    for name in ("web prod", "Web-Prod!"):
        r = await client.post(
            "/api/v1/renewal-policies", json={"name": name}, headers=admin_headers
        )
        assert r.status_code == 409, (name, r.text)
    other = (
        await client.post("/api/v1/renewal-policies", json={"name": "other"}, headers=admin_headers)
    ).json()
    r = await client.put(
        f"/api/v1/renewal-policies/{other['id']}", json={"name": "web prod"}, headers=admin_headers
    )
    assert r.status_code == 409


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"renewal_window_days": 0}, "renewal_window_days"),
        ({"renewal_window_days": 366}, "renewal_window_days"),
        ({"max_retries": 11}, "max_retries"),
        ({"retry_interval_seconds": 59}, "retry_interval_seconds"),
        ({"retry_interval_seconds": 86401}, "retry_interval_seconds"),
        ({"alert_thresholds_days": [400]}, "alert_thresholds_days"),
        ({"alert_thresholds_days": [-1]}, "alert_thresholds_days"),
        ({"jitter_percent": 51}, "jitter_percent"),
        ({"renew_fraction": 1.0}, "renew_fraction"),
        ({"alert_severity_map": {"30": "page"}}, "alert_severity_map"),
        ({"alert_severity_map": {"5": "info"}}, "alert_severity_map key '5'"),
        ({"alert_notifier_ids": ["ntf-nope"]}, "not notifiers"),
        ({"notify_events": ["certificate.exploded"]}, "unknown notify_events"),
        ({"name": ""}, "name"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_400_with_the_reason(client, admin_headers, fields, reason):
    r = await client.post(
        "/api/v1/renewal-policies", json={"name": "p", **fields}, headers=admin_headers
    )
    assert r.status_code == 400, r.text
    assert reason in r.text  # the detail, or the field errors of a schema violation
    assert (await client.get("/api/v1/renewal-policies", headers=admin_headers)).json()[
        "total"
    ] == 0


async def test_alert_notifiers_must_be_notifiers(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/renewal-policies",
        json={"name": "p", "alert_notifier_ids": [issuer]},
        headers=admin_headers,
    )
    assert r.status_code == 400
    assert issuer in r.json()["detail"]


async def test_a_policy_in_use_cannot_be_deleted(client, admin_headers):
    policy = (await _policy(client, admin_headers))["id"]
    r = await client.post(
        "/api/v1/profiles",
        json={"name": "prof", "renewal_policy_id": policy},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["renewal_policy_id"] == policy
    r = await client.delete(f"/api/v1/renewal-policies/{policy}", headers=admin_headers)
    assert r.status_code == 409
    assert "profile" in r.json()["detail"]
    r = await client.post(
        "/api/v1/profiles",
        json={"name": "bad", "renewal_policy_id": "rp-nope"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    assert "rp-nope" in r.json()["detail"]


async def _issue(client, headers, issuer, n, **fields):
    r = await client.post(
        "/api/v1/certificates/bulk",
        json={
            "certificates": [
                {"common_name": f"h{i}.example.test", "issuer_id": issuer, **fields}
                for i in range(n)
            ]
        },
        headers=headers,
    )
    assert r.status_code == 202, r.text
    await client.runtime.worker.drain()
    certs = []
    for item in r.json():
        cert_id = item["certificate"]["id"]
        cert = (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()
        assert cert["status"] == "active", cert
        certs.append(cert)
    return certs


def _ts(value):
    from datetime import datetime

    return datetime.fromisoformat(value)


async def test_jitter_spreads_a_fleet_inside_the_window(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    policy = (await _policy(client, admin_headers, renewal_window_days=20, jitter_percent=50))["id"]
    certs = await _issue(
        client, admin_headers, issuer, 8, validity_days=60, renewal_policy_id=policy
    )
    renew = [_ts(c["renew_at"]) for c in certs]
    assert len(set(renew)) == len(renew)
    for cert, at in zip(certs, renew, strict=True):
        expires = _ts(cert["expires_at"])
        assert cert["renewal_policy_id"] == policy
        # Inside the 20-day window, within its first half (50 % jitter), before expiry.
        assert expires - timedelta(days=20) <= at <= expires - timedelta(days=10)


async def test_profile_policy_applies_and_auto_renew_off_means_no_renewal(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    policy = (await _policy(client, admin_headers, auto_renew=False))["id"]
    r = await client.post(
        "/api/v1/profiles",
        json={"name": "manual", "renewal_policy_id": policy},
        headers=admin_headers,
    )
    profile = r.json()["id"]
    [cert] = await _issue(client, admin_headers, issuer, 1, profile_id=profile, validity_days=60)
    assert cert["renew_at"] is None and cert["expires_at"] is not None
    # Turning auto-renew on reschedules the certificates the policy governs at once.
    r = await client.put(
        f"/api/v1/renewal-policies/{policy}",
        json={"auto_renew": True, "renew_fraction": 0.5, "jitter_percent": 0},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    after = (await client.get(f"/api/v1/certificates/{cert['id']}", headers=admin_headers)).json()
    assert after["renew_at"] is not None
    expires = _ts(after["expires_at"])
    assert abs(_ts(after["renew_at"]) - (expires - timedelta(days=30))) < timedelta(minutes=5)


async def test_certificates_name_existing_policies_only(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "a.example.test", "issuer_id": issuer, "renewal_policy_id": "rp-x"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    assert "rp-x" in r.json()["detail"]
    policy = (await _policy(client, admin_headers))["id"]
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": "a.example.test", "issuer_id": issuer},
        headers=admin_headers,
    )
    cert_id = r.json()["certificate"]["id"]
    r = await client.put(
        f"/api/v1/certificates/{cert_id}", json={"renewal_policy_id": policy}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["renewal_policy_id"] == policy
    r = await client.put(
        f"/api/v1/certificates/{cert_id}", json={"renewal_policy_id": ""}, headers=admin_headers
    )
    assert r.json()["renewal_policy_id"] is None
