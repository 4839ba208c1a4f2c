"""A worker dying between "signed by the CA" and "stored" must not cause a second certificate."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certctl.db.base import utcnow
from certctl.db.models import CertificateVersion, Job
from certctl.domain.certificates import lifecycle
from certctl.domain.certificates.lifecycle import key_context
from certctl.worker.runner import Worker
from certctl_issuer_local import LocalIssuer


class ProcessDied(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even ``except Exception`` handlers."""


async def test_retry_after_a_crash_re_creates_the_same_certificate(
    client, admin_headers, monkeypatch
):
    runtime = client.runtime
    issuer = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    cert_id = (
        await client.post(
            "/api/v1/certificates",
            json={"common_name": "crash.example.test", "issuer_id": issuer},
            headers=admin_headers,
        )
    ).json()["certificate"]["id"]

    signed: list[str] = []
    original_issue = LocalIssuer.issue

    async def recording_issue(self, request):
        result = await original_issue(self, request)
        signed.append(result.certificate_pem)
        return result

    async def die(*_args, **_kwargs):
        raise ProcessDied

    monkeypatch.setattr(LocalIssuer, "issue", recording_issue)
    with monkeypatch.context() as crash:
        crash.setattr(lifecycle, "_record_issued", die)
        with pytest.raises(ProcessDied):
            await runtime.worker.run_once()
    assert len(signed) == 1
    async with runtime.sessions.begin() as session:
        job = await session.scalar(sa.select(Job).where(Job.certificate_id == cert_id))
        assert job.status == "running" and job.attempts == 1
        # The dead worker's lease runs out; another worker picks the job up.
        await session.execute(
            sa.update(Job)
            .where(Job.id == job.id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )

    await Worker(runtime).drain()

    assert len(signed) == 2
    assert signed[0] == signed[1], "the retry must re-create the certificate, not sign another"
    async with runtime.sessions() as session:
        versions = list(
            await session.scalars(
                sa.select(CertificateVersion).where(CertificateVersion.certificate_id == cert_id)
            )
        )
        job = await session.get(Job, job.id)
    assert job.status == "completed" and job.attempts == 2
    assert "_pending_key_enc" not in job.result  # the order's sealed key leaves the job row
    assert [v.certificate_pem for v in versions] == [signed[0]]
    # The stored key is the one the first attempt sent to the CA.
    key = serialization.load_pem_private_key(
        runtime.box.decrypt(versions[0].private_key_enc, key_context(versions[0].id)), None
    )
    leaf = x509.load_pem_x509_certificate(signed[0].encode())
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
