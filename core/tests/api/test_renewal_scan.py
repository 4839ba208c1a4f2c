"""The set-based renewal scan: chunking, open jobs, versions renewed once."""

from __future__ import annotations

import sqlalchemy as sa

from certctl.db.base import utcnow
from certctl.db.models import AuditEvent, Job, ManagedCertificate
from certctl.worker.renewal import scan_for_renewals


async def _issued(client, headers, count: int) -> list[str]:
    issuer = (
        await client.post(
            "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
        )
    ).json()["id"]
    r = await client.post(
        "/api/v1/certificates/bulk",
        json={
            "certificates": [
                {"common_name": f"s{i}.scan.test", "issuer_id": issuer} for i in range(count)
            ]
        },
        headers=headers,
    )
    assert r.status_code == 202, r.text
    await client.runtime.worker.drain()
    async with client.runtime.sessions() as session:
        return list(await session.scalars(sa.select(ManagedCertificate.id)))


async def _make_due(runtime, ids: list[str]) -> None:
    async with runtime.sessions.begin() as session:
        await session.execute(
            sa.update(ManagedCertificate)
            .where(ManagedCertificate.id.in_(ids))
            .values(renew_at=utcnow())
        )


async def test_scan_walks_every_chunk_and_audits_each_renewal(client, admin_headers):
    ids = await _issued(client, admin_headers, 7)
    runtime = client.runtime
    await _make_due(runtime, ids[:5])
    assert await scan_for_renewals(runtime, chunk=2) == 5
    assert await scan_for_renewals(runtime, chunk=2) == 0  # this version is taken care of
    async with runtime.sessions() as session:
        renewals = list(await session.scalars(sa.select(Job).where(Job.type == "renewal")))
        audited = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "certificate.renew.request")
        )
    assert sorted(j.certificate_id for j in renewals) == sorted(ids[:5])
    assert audited == 5
    await runtime.worker.drain()
    # Renewed: a new version whose renewal time lies ahead, so nothing is due any more.
    assert await scan_for_renewals(runtime) == 0
    await _make_due(runtime, ids[:1])
    assert await scan_for_renewals(runtime) == 1  # the new version renews again when due


async def test_scan_skips_certificates_with_an_open_issuance(client, admin_headers):
    ids = await _issued(client, admin_headers, 2)
    runtime = client.runtime
    forced = await client.post(f"/api/v1/certificates/{ids[0]}/renew", headers=admin_headers)
    assert forced.status_code == 202, forced.text
    await _make_due(runtime, ids)
    assert await scan_for_renewals(runtime) == 1  # ids[0] already has a renewal under way
    async with runtime.sessions() as session:
        open_jobs = (
            await session.execute(
                sa.select(Job.certificate_id, sa.func.count())
                .where(Job.status == "pending")
                .group_by(Job.certificate_id)
            )
        ).all()
    assert dict(open_jobs) == {ids[0]: 1, ids[1]: 1}


async def test_archived_and_revoked_certificates_are_not_renewed(client, admin_headers):
    ids = await _issued(client, admin_headers, 2)
    runtime = client.runtime
    assert (
        await client.delete(f"/api/v1/certificates/{ids[0]}", headers=admin_headers)
    ).status_code in (200, 204)
    r = await client.post(
        f"/api/v1/certificates/{ids[1]}/revoke",
        json={"reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    await _make_due(runtime, ids)
    assert await scan_for_renewals(runtime) == 0


async def test_a_renewal_policy_bounds_the_attempts_of_its_renewals(client, admin_headers):
    r = await client.post(
        "/api/v1/renewal-policies",
        json={"name": "strict", "max_retries": 1},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    policy = r.json()["id"]
    ids = await _issued(client, admin_headers, 2)
    r = await client.put(
        f"/api/v1/certificates/{ids[0]}", json={"renewal_policy_id": policy}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    runtime = client.runtime
    await _make_due(runtime, ids)
    assert await scan_for_renewals(runtime) == 2
    async with runtime.sessions() as session:
        attempts = dict(
            (
                await session.execute(
                    sa.select(Job.certificate_id, Job.max_attempts).where(Job.type == "renewal")
                )
            ).all()
        )
    assert attempts == {ids[0]: 2, ids[1]: runtime.settings.job_max_attempts}
