"""Two-person approvals: gated issuance and renewal, decisions, profile edits, bypass, expiry.

The issuer here counts its signing calls, so "a rejected request signs nothing" is checked at
the CA itself as well as in ``certificate_versions``.
"""

import asyncio
from datetime import UTC, datetime
from typing import ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.domain.approvals.service import expire_stale_approvals
from certctl.plugins.manager import load_plugins
from certctl.settings import parse_named_api_keys
from certctl.worker.renewal import scan_for_renewals
from certctl_sdk import hookimpl
from certctl_sdk.testing.fakes import FakeIssuer

ADMIN_KEY = "admin-test-key-0123456789"
APPROVER_KEY = "approver-test-key-0123456789"
VIEWER_KEY = "viewer-test-key-0123456789"
KEYS = parse_named_api_keys(
    f"admin:{ADMIN_KEY}:admin,approver:{APPROVER_KEY}:admin,viewer:{VIEWER_KEY}"
)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
APPROVER = {"Authorization": f"Bearer {APPROVER_KEY}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_KEY}"}


class CountingIssuer(FakeIssuer):
    """The fake CA, recording every signing request across its instances."""

    kind = "counting"
    calls: ClassVar[list[str]] = []

    async def issue(self, request):
        CountingIssuer.calls.append(request.common_name)
        return await super().issue(request)


class _Plugin:
    @hookimpl
    def register_issuers(self):
        return [CountingIssuer]


@pytest.fixture
async def api(app_factory):
    CountingIssuer.calls.clear()
    host = load_plugins(extra_plugins=[_Plugin()])
    return await app_factory(host=host, api_keys_named=KEYS)


@pytest.fixture
async def bypass_api(app_factory):
    CountingIssuer.calls.clear()
    host = load_plugins(extra_plugins=[_Plugin()])
    return await app_factory(host=host, api_keys_named=KEYS, approval_bypass=True)


async def scalar(database_url, query, **params):
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(query), params)).scalar_one()
    finally:
        await engine.dispose()


async def execute(database_url, query, **params):
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(query), params)
    finally:
        await engine.dispose()


def long_ago(database_url):
    """A timestamp in 2000, as each backend's driver takes it in a raw statement."""
    if database_url.startswith("sqlite"):
        return "2000-01-01 00:00:00"
    return datetime(2000, 1, 1, tzinfo=UTC)


async def versions(database_url):
    return await scalar(database_url, "SELECT count(*) FROM certificate_versions")


async def setup(client, *, gated=True):
    r = await client.post(
        "/api/v1/issuers", json={"name": "ca", "type": "counting", "config": {}}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    issuer = r.json()["id"]
    r = await client.post(
        "/api/v1/profiles",
        json={"name": "vip", "requires_approval": gated, "allowed_san_patterns": ["*.vip.test"]},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    return issuer, r.json()["id"]


async def request_cert(client, issuer, profile, name="www"):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": f"{name}.vip.test", "issuer_id": issuer, "profile_id": profile},
        headers=ADMIN,
    )
    assert r.status_code == 202, r.text
    return r.json()


async def approval_of(client, job_id):
    r = await client.get("/api/v1/approvals", params={"job_id": job_id}, headers=VIEWER)
    assert r.status_code == 200, r.text
    [approval] = r.json()["data"]
    return approval


async def test_gated_issuance_waits_for_a_second_person(api, database_url):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    job = accepted["job"]
    assert job["status"] == "awaiting_approval"
    approval = await approval_of(api, job["id"])
    assert approval["kind"] == "cert_issuance"
    assert approval["state"] == "pending"
    assert approval["requested_by"] == "admin"
    assert approval["certificate_id"] == accepted["certificate"]["id"]
    assert approval["profile_id"] == profile
    assert approval["decided_by"] is None and approval["decided_at"] is None

    await api.runtime.worker.drain()
    assert await versions(database_url) == 0 and CountingIssuer.calls == []
    r = await api.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN)
    assert r.json()["status"] == "awaiting_approval", "no worker claims a job awaiting approval"

    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=ADMIN)
    assert r.status_code == 403
    assert "two-person integrity" in r.json()["detail"]
    assert (await approval_of(api, job["id"]))["state"] == "pending"

    r = await api.post(
        f"/api/v1/approvals/{approval['id']}/approve", json={"note": "ok"}, headers=APPROVER
    )
    assert r.status_code == 200, r.text
    decided = r.json()
    assert decided["state"] == "approved"
    assert decided["decided_by"] == "approver" and decided["note"] == "ok"
    assert decided["decided_at"] is not None
    assert (await api.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN)).json()["status"] == "pending"

    for path, headers in (("approve", APPROVER), ("reject", APPROVER), ("reject", ADMIN)):
        r = await api.post(f"/api/v1/approvals/{approval['id']}/{path}", headers=headers)
        assert r.status_code == 409, (path, r.text)
    r = await api.post(f"/api/v1/jobs/{job['id']}/reject", headers=APPROVER)
    assert r.status_code == 409

    await api.runtime.worker.drain()
    assert await versions(database_url) == 1 and CountingIssuer.calls == ["www.vip.test"]
    cert = (
        await api.get(f"/api/v1/certificates/{accepted['certificate']['id']}", headers=ADMIN)
    ).json()
    assert cert["status"] == "active"

    audit = (
        await api.get("/api/v1/audit", params={"resource_id": approval["id"]}, headers=ADMIN)
    ).json()["data"]
    assert {(e["action"], e["actor"]) for e in audit} >= {
        ("approval.request", "admin"),
        ("approval.approve", "approver"),
    }


async def test_rejection_signs_nothing(api, database_url):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    job_id = accepted["job"]["id"]
    r = await api.post(
        f"/api/v1/jobs/{job_id}/reject", json={"note": "not this one"}, headers=APPROVER
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "rejected" and r.json()["note"] == "not this one"

    job = (await api.get(f"/api/v1/jobs/{job_id}", headers=ADMIN)).json()
    assert job["status"] == "cancelled"
    assert "rejected by approver" in job["last_error"]
    cert = (
        await api.get(f"/api/v1/certificates/{accepted['certificate']['id']}", headers=ADMIN)
    ).json()
    assert cert["status"] == "rejected"
    assert "not this one" in cert["last_error"]

    await api.runtime.worker.drain()
    assert await versions(database_url) == 0
    assert CountingIssuer.calls == []
    assert (await api.post(f"/api/v1/jobs/{job_id}/approve", headers=ADMIN)).status_code == 409
    await api.runtime.worker.drain()
    assert await versions(database_url) == 0

    audit = (
        await api.get("/api/v1/audit", params={"action": "approval.reject"}, headers=ADMIN)
    ).json()["data"]
    assert [e["actor"] for e in audit] == ["approver"]

    # Asking again opens a new request rather than reviving the rejected one.
    r = await api.post(f"/api/v1/certificates/{accepted['certificate']['id']}/renew", headers=ADMIN)
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval"
    assert r.json()["id"] != job_id


async def test_requester_may_withdraw_but_not_approve(api, database_url):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    approval = await approval_of(api, accepted["job"]["id"])
    r = await api.post(f"/api/v1/jobs/{accepted['job']['id']}/approve", headers=ADMIN)
    assert r.status_code == 403 and "two-person" in r.json()["detail"]
    r = await api.post(f"/api/v1/approvals/{approval['id']}/reject", headers=ADMIN)
    assert r.status_code == 200 and r.json()["decided_by"] == "admin"
    await api.runtime.worker.drain()
    assert await versions(database_url) == 0 and CountingIssuer.calls == []


async def test_concurrent_approve_and_reject_have_one_winner(api, database_url):
    issuer, profile = await setup(api)
    n = 12
    r = await api.post(
        "/api/v1/certificates/bulk",
        json={
            "certificates": [
                {"common_name": f"h{i}.vip.test", "issuer_id": issuer, "profile_id": profile}
                for i in range(n)
            ]
        },
        headers=ADMIN,
    )
    assert r.status_code == 202, r.text
    jobs = [a["job"] for a in r.json()]
    assert {j["status"] for j in jobs} == {"awaiting_approval"}
    approvals = [await approval_of(api, j["id"]) for j in jobs]

    calls = []
    for i, a in enumerate(approvals):
        approve = api.post(f"/api/v1/approvals/{a['id']}/approve", headers=APPROVER)
        # Half the rejections go through the job alias, half through the approval.
        reject = (
            api.post(f"/api/v1/jobs/{a['job_id']}/reject", headers=APPROVER)
            if i % 2
            else api.post(f"/api/v1/approvals/{a['id']}/reject", headers=ADMIN)
        )
        calls += [approve, reject] if i % 3 else [reject, approve]
    answers = await asyncio.gather(*calls)
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 409}, [r.text for r in answers if r.status_code not in (200, 409)]
    assert codes.count(200) == n and codes.count(409) == n

    approved = 0
    for a in approvals:
        state = (await api.get(f"/api/v1/approvals/{a['id']}", headers=VIEWER)).json()["state"]
        job = (await api.get(f"/api/v1/jobs/{a['job_id']}", headers=VIEWER)).json()["status"]
        assert (state, job) in {("approved", "pending"), ("rejected", "cancelled")}, (state, job)
        approved += state == "approved"

    await api.runtime.worker.drain()
    assert await versions(database_url) == approved
    assert len(CountingIssuer.calls) == approved
    rejected_versions = await scalar(
        database_url,
        "SELECT count(*) FROM certificate_versions v JOIN approval_requests a "
        "ON a.certificate_id = v.certificate_id WHERE a.state = 'rejected'",
    )
    assert rejected_versions == 0


async def test_renewals_are_gated_too(api, database_url):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    cert_id = accepted["certificate"]["id"]
    await api.post(f"/api/v1/jobs/{accepted['job']['id']}/approve", headers=APPROVER)
    await api.runtime.worker.drain()
    assert await versions(database_url) == 1

    # Manual renewal.
    r = await api.post(f"/api/v1/certificates/{cert_id}/renew", headers=ADMIN)
    assert r.status_code == 202
    manual = r.json()
    assert manual["type"] == "renewal" and manual["status"] == "awaiting_approval"
    again = await api.post(f"/api/v1/certificates/{cert_id}/renew", headers=ADMIN)
    assert again.json()["id"] == manual["id"], "the waiting renewal is reused"
    approval = await approval_of(api, manual["id"])
    assert approval["kind"] == "cert_renewal"
    await api.post(f"/api/v1/approvals/{approval['id']}/reject", headers=APPROVER)
    await api.runtime.worker.drain()
    assert await versions(database_url) == 1
    cert = (await api.get(f"/api/v1/certificates/{cert_id}", headers=ADMIN)).json()
    assert cert["status"] == "active", "a rejected renewal leaves the issued certificate alone"

    # The automatic renewal scan.
    await execute(
        database_url,
        "UPDATE managed_certificates SET renew_at = :t WHERE id = :id",
        t=long_ago(database_url),
        id=cert_id,
    )
    assert await scan_for_renewals(api.runtime) == 1
    auto = (
        await api.get(
            "/api/v1/jobs",
            params={"certificate_id": cert_id, "status": "awaiting_approval"},
            headers=ADMIN,
        )
    ).json()["data"]
    assert len(auto) == 1 and auto[0]["type"] == "renewal"
    approval = await approval_of(api, auto[0]["id"])
    assert approval["requested_by"] == "system" and approval["kind"] == "cert_renewal"
    await api.runtime.worker.drain()
    assert await versions(database_url) == 1
    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=ADMIN)
    assert r.status_code == 200, "the system requested it, so any person may approve"
    await api.runtime.worker.drain()
    assert await versions(database_url) == 2
    assert len(CountingIssuer.calls) == 2


async def test_profile_edits_of_a_gated_profile_need_approval(api, database_url):
    _, profile = await setup(api)
    before = (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json()

    # Turning approval off is itself an edit that needs approval (the flip-flop loophole).
    r = await api.put(
        f"/api/v1/profiles/{profile}",
        json={"requires_approval": False, "description": "relaxed"},
        headers=ADMIN,
    )
    assert r.status_code == 202, r.text
    approval = r.json()["approval"]
    assert approval["kind"] == "profile_edit" and approval["state"] == "pending"
    assert approval["payload"]["changes"] == {
        "requires_approval": False,
        "description": "relaxed",
    }
    assert approval["payload"]["proposed"]["requires_approval"] is False
    assert approval["payload"]["proposed"]["name"] == "vip"
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json() == before

    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=ADMIN)
    assert r.status_code == 403
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json() == before
    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=APPROVER)
    assert r.status_code == 200, r.text
    after = (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json()
    assert after["requires_approval"] is False and after["description"] == "relaxed"

    # Now ungated: plain edits apply at once, but switching approval back on is reviewed.
    r = await api.put(f"/api/v1/profiles/{profile}", json={"description": "x"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["description"] == "x"
    r = await api.put(
        f"/api/v1/profiles/{profile}", json={"requires_approval": True}, headers=ADMIN
    )
    assert r.status_code == 202
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json()[
        "requires_approval"
    ] is False
    r = await api.post(f"/api/v1/approvals/{r.json()['approval']['id']}/reject", headers=APPROVER)
    assert r.status_code == 200

    audit = (
        await api.get("/api/v1/audit", params={"action": "profile.update"}, headers=ADMIN)
    ).json()["data"]
    assert [e["actor"] for e in audit] == ["admin", "approver"]


async def test_profile_edits_are_validated_when_proposed_and_when_applied(api):
    _, profile = await setup(api)
    r = await api.put(
        f"/api/v1/profiles/{profile}", json={"allowed_ekus": ["bogus"]}, headers=ADMIN
    )
    assert r.status_code == 400
    r = await api.put(
        f"/api/v1/profiles/{profile}", json={"required_san_patterns": ["a*b"]}, headers=ADMIN
    )
    assert r.status_code == 400
    assert (await api.get("/api/v1/approvals", headers=ADMIN)).json()["total"] == 0

    r = await api.put(f"/api/v1/profiles/{profile}", json={"name": "taken"}, headers=ADMIN)
    assert r.status_code == 202
    approval_id = r.json()["approval"]["id"]
    r = await api.post("/api/v1/profiles", json={"name": "taken"}, headers=ADMIN)
    assert r.status_code == 201
    r = await api.post(f"/api/v1/approvals/{approval_id}/approve", headers=APPROVER)
    assert r.status_code == 409, r.text
    state = (await api.get(f"/api/v1/approvals/{approval_id}", headers=ADMIN)).json()["state"]
    assert state == "pending", "a refused approval changes nothing"
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).json()["name"] == "vip"


async def test_deleting_a_gated_profile_needs_approval(api):
    _, profile = await setup(api)
    r = await api.delete(f"/api/v1/profiles/{profile}", headers=ADMIN)
    assert r.status_code == 202, r.text
    approval = r.json()["approval"]
    assert approval["kind"] == "profile_delete"
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).status_code == 200
    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=APPROVER)
    assert r.status_code == 200
    assert (await api.get(f"/api/v1/profiles/{profile}", headers=ADMIN)).status_code == 404


async def test_bypass_approves_at_once_and_is_audited(bypass_api, database_url):
    api = bypass_api
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    assert accepted["job"]["status"] == "pending"
    approval = await approval_of(api, accepted["job"]["id"])
    assert approval["state"] == "approved"
    assert approval["decided_by"] == "system-bypass"
    await api.runtime.worker.drain()
    assert await versions(database_url) == 1 and len(CountingIssuer.calls) == 1

    r = await api.put(f"/api/v1/profiles/{profile}", json={"description": "direct"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["description"] == "direct"

    audit = (await api.get("/api/v1/audit", params={"outcome": "bypassed"}, headers=ADMIN)).json()[
        "data"
    ]
    assert len(audit) == 2
    assert {e["actor"] for e in audit} == {"system-bypass"}
    assert {e["details"]["kind"] for e in audit} == {"cert_issuance", "profile_edit"}


async def test_stale_requests_expire_with_their_jobs(api, database_url):
    issuer, profile = await setup(api)
    old = await request_cert(api, issuer, profile, "old")
    fresh = await request_cert(api, issuer, profile, "fresh")
    for table, column in (("approval_requests", "job_id"), ("jobs", "id")):
        await execute(
            database_url,
            f"UPDATE {table} SET created_at = :t WHERE {column} = :id",  # noqa: S608
            t=long_ago(database_url),
            id=old["job"]["id"],
        )
    assert await expire_stale_approvals(api.runtime) == 1
    assert await expire_stale_approvals(api.runtime) == 0
    expired = await approval_of(api, old["job"]["id"])
    assert expired["state"] == "expired" and expired["decided_by"] == "system"
    job = (await api.get(f"/api/v1/jobs/{old['job']['id']}", headers=ADMIN)).json()
    assert job["status"] == "failed"
    cert = (await api.get(f"/api/v1/certificates/{old['certificate']['id']}", headers=ADMIN)).json()
    assert cert["status"] == "failed"
    assert (await approval_of(api, fresh["job"]["id"]))["state"] == "pending"
    r = await api.post(f"/api/v1/approvals/{expired['id']}/approve", headers=APPROVER)
    assert r.status_code == 409
    await api.runtime.worker.drain()
    assert await versions(database_url) == 0 and CountingIssuer.calls == []


async def test_archiving_cancels_the_waiting_request(api, database_url):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    r = await api.delete(f"/api/v1/certificates/{accepted['certificate']['id']}", headers=ADMIN)
    assert r.status_code == 204
    approval = await approval_of(api, accepted["job"]["id"])
    assert approval["state"] == "cancelled"
    job = (await api.get(f"/api/v1/jobs/{accepted['job']['id']}", headers=ADMIN)).json()
    assert job["status"] == "cancelled"
    r = await api.post(f"/api/v1/approvals/{approval['id']}/approve", headers=APPROVER)
    assert r.status_code == 409


async def test_permissions_filters_and_bad_input(api):
    issuer, profile = await setup(api)
    accepted = await request_cert(api, issuer, profile)
    approval = await approval_of(api, accepted["job"]["id"])

    for path in (
        f"/api/v1/approvals/{approval['id']}/approve",
        f"/api/v1/jobs/{accepted['job']['id']}/reject",
    ):
        r = await api.post(path, headers=VIEWER)
        assert r.status_code == 403, path
    r = await api.post(f"/api/v1/jobs/{accepted['job']['id']}/cancel", headers=ADMIN)
    assert r.status_code == 409 and "reject" in r.json()["detail"]

    assert (await api.get("/api/v1/approvals/ar-nope", headers=VIEWER)).status_code == 404
    assert (await api.post("/api/v1/jobs/job-nope/approve", headers=APPROVER)).status_code == 404
    r = await api.post(
        f"/api/v1/approvals/{approval['id']}/approve", json={"bogus": 1}, headers=APPROVER
    )
    assert r.status_code == 400
    r = await api.post(
        f"/api/v1/approvals/{approval['id']}/approve", json={"note": "x" * 2001}, headers=APPROVER
    )
    assert r.status_code == 400
    assert (await approval_of(api, accepted["job"]["id"]))["state"] == "pending"

    await request_cert(api, issuer, profile, "two")
    await api.put(f"/api/v1/profiles/{profile}", json={"description": "d"}, headers=ADMIN)

    async def listed(**params):
        r = await api.get("/api/v1/approvals", params=params, headers=VIEWER)
        assert r.status_code == 200, r.text
        return r.json()

    assert (await listed())["total"] == 3
    assert (await listed(kind="cert_issuance"))["total"] == 2
    assert (await listed(kind="profile_edit"))["total"] == 1
    assert (await listed(state="pending", profile_id=profile))["total"] == 3
    assert (await listed(state="approved"))["total"] == 0
    page = await listed(per_page=2, page=2)
    assert len(page["data"]) == 1 and page["total"] == 3
    for params in ({"state": "maybe"}, {"kind": "nope"}, {"per_page": 0}):
        assert (
            await api.get("/api/v1/approvals", params=params, headers=VIEWER)
        ).status_code == 400

    # A job that never needed approval has nothing to decide.
    r = await api.post(
        "/api/v1/certificates",
        json={"common_name": "free.example.test", "issuer_id": issuer},
        headers=ADMIN,
    )
    free_job = r.json()["job"]["id"]
    assert (await api.post(f"/api/v1/jobs/{free_job}/approve", headers=APPROVER)).status_code == 409


async def test_bypass_covers_the_automatic_renewal_scan(bypass_api, database_url):
    api = bypass_api
    issuer, profile = await setup(api)
    cert_id = (await request_cert(api, issuer, profile))["certificate"]["id"]
    await api.runtime.worker.drain()
    await execute(
        database_url,
        "UPDATE managed_certificates SET renew_at = :t WHERE id = :id",
        t=long_ago(database_url),
        id=cert_id,
    )
    assert await scan_for_renewals(api.runtime) == 1
    assert await scan_for_renewals(api.runtime) == 0
    jobs = (
        await api.get(
            "/api/v1/jobs", params={"certificate_id": cert_id, "type": "renewal"}, headers=ADMIN
        )
    ).json()["data"]
    assert [j["status"] for j in jobs] == ["pending"]
    approval = await approval_of(api, jobs[0]["id"])
    assert approval["state"] == "approved" and approval["decided_by"] == "system-bypass"
    await api.runtime.worker.drain()
    assert await versions(database_url) == 2
