"""Revocations and approvals reach the notifiers as events, once each (real webhook receiver)."""

from __future__ import annotations

import collections

import pytest

from certctl.settings import parse_named_api_keys
from certctl_sdk.testing.receiver import HttpReceiver

ADMIN_KEY = "admin-test-key-0123456789"
APPROVER_KEY = "approver-test-key-0123456789"
KEYS = parse_named_api_keys(f"admin:{ADMIN_KEY}:admin,approver:{APPROVER_KEY}:admin")
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
APPROVER = {"Authorization": f"Bearer {APPROVER_KEY}"}


@pytest.fixture
def receiver():
    with HttpReceiver() as running:
        yield running


@pytest.fixture
async def api(app_factory, receiver):
    client = await app_factory(api_keys_named=KEYS)
    r = await client.post(
        "/api/v1/notifiers",
        json={
            "name": "ops",
            "type": "webhook",
            "config": {"url": receiver.base_url, "secret": "events-hmac-secret-0123456789"},
        },
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=ADMIN
    )
    client.issuer = r.json()["id"]
    return client


def events(receiver) -> collections.Counter[tuple[str, str]]:
    return collections.Counter(
        (r.json["event"], r.json.get("certificate_id") or "") for r in receiver.requests
    )


async def test_revocation_is_an_event(api, receiver):
    ids = []
    for name in ("a", "b", "c"):
        r = await api.post(
            "/api/v1/certificates",
            json={"common_name": f"{name}.events.test", "issuer_id": api.issuer},
            headers=ADMIN,
        )
        ids.append(r.json()["certificate"]["id"])
    await api.runtime.worker.drain()
    r = await api.post(
        f"/api/v1/certificates/{ids[0]}/revoke", json={"reason": "keyCompromise"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    r = await api.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": ids[1:], "reason": "superseded"},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    seen = events(receiver)
    assert {c: n for (e, c), n in seen.items() if e == "certificate.revoked"} == dict.fromkeys(
        ids, 1
    )
    revoked = next(r.json for r in receiver.requests if r.json["event"] == "certificate.revoked")
    assert revoked["data"]["reason"] == "keyCompromise"


async def test_approval_requests_and_decisions_are_events(api, receiver):
    r = await api.post(
        "/api/v1/profiles", json={"name": "vip", "requires_approval": True}, headers=ADMIN
    )
    profile = r.json()["id"]
    made = []
    for name in ("one", "two"):
        r = await api.post(
            "/api/v1/certificates",
            json={
                "common_name": f"{name}.events.test",
                "issuer_id": api.issuer,
                "profile_id": profile,
            },
            headers=ADMIN,
        )
        assert r.json()["job"]["status"] == "awaiting_approval"
        made.append(r.json())
    r = await api.post(f"/api/v1/jobs/{made[0]['job']['id']}/approve", headers=APPROVER)
    assert r.status_code == 200, r.text
    approvals = (
        await api.get("/api/v1/approvals", params={"job_id": made[1]["job"]["id"]}, headers=ADMIN)
    ).json()["data"]
    r = await api.post(f"/api/v1/approvals/{approvals[0]['id']}/reject", headers=APPROVER)
    assert r.status_code == 200, r.text
    r = await api.put(f"/api/v1/profiles/{profile}", json={"description": "x"}, headers=ADMIN)
    assert r.status_code == 202

    bodies = [r.json for r in receiver.requests]
    requested = [b for b in bodies if b["event"] == "approval.requested"]
    decided = [b for b in bodies if b["event"] == "approval.decided"]
    assert sorted(b["data"]["kind"] for b in requested) == [
        "cert_issuance",
        "cert_issuance",
        "profile_edit",
    ]
    assert sorted(b["data"]["state"] for b in decided) == ["approved", "rejected"]
    assert {b["data"]["decided_by"] for b in decided} == {"approver"}


async def test_expired_approvals_are_announced(api, receiver):
    from datetime import timedelta

    import sqlalchemy as sa

    from certctl.db.base import utcnow
    from certctl.db.models import ApprovalRequest
    from certctl.domain.approvals.service import expire_stale_approvals

    profile = (
        await api.post(
            "/api/v1/profiles", json={"name": "slow", "requires_approval": True}, headers=ADMIN
        )
    ).json()["id"]
    r = await api.post(
        "/api/v1/certificates",
        json={"common_name": "late.events.test", "issuer_id": api.issuer, "profile_id": profile},
        headers=ADMIN,
    )
    cert_id = r.json()["certificate"]["id"]
    async with api.runtime.sessions.begin() as session:
        await session.execute(
            sa.update(ApprovalRequest).values(created_at=utcnow() - timedelta(days=30))
        )
    assert await expire_stale_approvals(api.runtime) == 1
    decided = [r.json for r in receiver.requests if r.json["event"] == "approval.decided"]
    assert [(d["certificate_id"], d["data"]["state"]) for d in decided] == [(cert_id, "expired")]
