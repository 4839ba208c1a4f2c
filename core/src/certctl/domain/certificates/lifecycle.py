"""What workers do with issuance, renewal and deployment jobs.

Each handler reads what it needs, performs the connector call outside any transaction, then
writes every result *and* the job's completion in one transaction guarded by the job's lease
(``jobs.finish``). A handler raising leaves the database untouched; the runner decides between
retry and failure from the exception's class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateTarget,
    CertificateVersion,
    ConnectorInstance,
    Deployment,
    Job,
    ManagedCertificate,
    RenewalPolicy,
)
from certctl.domain.audit.service import audit_row, record, record_many
from certctl.domain.auth.actor import SYSTEM, Actor
from certctl.domain.jobs import service as jobs
from certctl.domain.notifications.routing import policies_of
from certctl.domain.policy import IssuancePolicyInput, check_issuance
from certctl.domain.renewal_policies.timing import renew_before_days_of, renewal_time
from certctl.errors import PolicyViolation
from certctl.lib.keys import build_csr, generate_key, private_key_pem
from certctl.lib.names import classify_sans
from certctl_sdk import (
    DeployRequest,
    EventType,
    Issuer,
    IssueRequest,
    LifecycleEvent,
    PendingIssuance,
    Secret,
    Target,
    TargetCapability,
)
from certctl_sdk.errors import ConfigurationError, RejectedError
from certctl_sdk.models import CertificateBundle, KeyType
from certctl_sdk.pem import bundle_from_pem

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "IssuanceOutcome",
    "JobLost",
    "execute_deployment",
    "execute_issuances",
    "key_context",
    "renew_at_for",
]


class JobLost(Exception):
    """Another worker reclaimed the job; this worker's results were discarded."""


def key_context(version_id: str) -> str:
    """Encryption context binding a private key to its version row."""
    return f"certificate-key:{version_id}"


def renew_at_for(
    cert: ManagedCertificate,
    profile: CertificateProfile | None,
    policy: RenewalPolicy | None,
    *,
    version: int,
    not_before: datetime,
    not_after: datetime,
    default_jitter_percent: int,
) -> datetime | None:
    """When to renew this version (see :func:`renewal_time`); None when auto-renew is off."""
    return renewal_time(
        certificate_id=cert.id,
        version=version,
        not_before=not_before,
        not_after=not_after,
        policy=policy,
        renew_before_days=renew_before_days_of(cert, profile),
        default_jitter_percent=default_jitter_percent,
    )


def _actor(job: Job) -> Actor:
    return SYSTEM if job.requested_by == "system" else Actor(name=job.requested_by, type="APIKey")


class _Signed(NamedTuple):
    job: Job
    certificate_id: str
    profile: CertificateProfile | None
    bundle: CertificateBundle
    csr_pem: str
    key_pem: str | None
    """None when the key stays with the client (``key_location = client``)."""


IssuanceOutcome = LifecycleEvent | None | BaseException
"""Per job: the event to publish, None (nothing to publish), or the exception that stopped it."""


async def execute_issuances(
    runtime: Runtime, batch: Sequence[Job], worker_id: str
) -> list[IssuanceOutcome]:
    """Issue (or renew) the certificates of a batch of claimed jobs.

    Rows are read with one query per table, every new order (key, CSR, order time) is stored on
    its job before any CA sees it, connector calls run concurrently, and every successful
    issuance of the batch is recorded in one transaction: the per-certificate cost is the
    signature and a few rows in bulk statements, not a dozen round trips.
    """
    async with runtime.sessions() as session:
        certs = await _by_id(session, ManagedCertificate, {j.certificate_id for j in batch})
        profiles = await _by_id(
            session, CertificateProfile, {c.profile_id for c in certs.values() if c.profile_id}
        )
        issuers = await _by_id(session, ConnectorInstance, {c.issuer_id for c in certs.values()})
    outcomes: dict[str, IssuanceOutcome] = {}
    ready: list[_Order] = []
    for job in batch:
        try:
            order = await _check(runtime, job, certs, profiles, issuers, worker_id)
        except Exception as exc:  # noqa: BLE001 - the runner classifies it
            outcomes[job.id] = exc
            continue
        if order is not None:
            ready.append(order)
    try:
        await _place_orders(runtime, ready, worker_id)
    except Exception as exc:  # noqa: BLE001 - nothing reached a CA; each job retries
        outcomes.update({order.job.id: exc for order in ready})
        ready = []
    signed = await asyncio.gather(
        *(_sign(runtime, order, worker_id) for order in ready), return_exceptions=True
    )
    stored: list[_Signed] = []
    for order, result in zip(ready, signed, strict=True):
        if isinstance(result, _Signed):
            stored.append(result)
        else:
            outcomes[order.job.id] = result
    if stored:
        try:
            events = await _record_issued(runtime, stored, worker_id)
        except Exception as exc:  # noqa: BLE001 - the whole batch's write failed; each job retries
            events = {item.job.id: exc for item in stored}
        outcomes.update(events)
    return [outcomes.get(job.id) for job in batch]


async def _by_id(session: AsyncSession, model: Any, ids: set[Any]) -> dict[str, Any]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await session.scalars(select(model).where(model.id.in_(wanted)))
    return {row.id: row for row in rows}


class _Order(NamedTuple):
    job: Job
    cert: ManagedCertificate
    profile: CertificateProfile | None
    issuer_row: ConnectorInstance
    issuer: Issuer[Any]


async def _check(
    runtime: Runtime,
    job: Job,
    certs: dict[str, ManagedCertificate],
    profiles: dict[str, CertificateProfile],
    issuers: dict[str, ConnectorInstance],
    worker_id: str,
) -> _Order | None:
    """Whether the job may go to its CA; None when it was cancelled instead."""
    cert = certs.get(job.certificate_id or "")
    if cert is None or cert.status in ("archived", "revoked"):
        async with runtime.sessions() as session:
            await jobs.finish(
                session,
                job,
                worker_id=worker_id,
                status="cancelled",
                result={"reason": "certificate archived, revoked or deleted"},
            )
            await session.commit()
        return None
    profile = profiles.get(cert.profile_id or "")
    issuer_row = issuers.get(cert.issuer_id)
    if issuer_row is None or not issuer_row.enabled:
        raise ConfigurationError("the certificate's issuer is missing or disabled")
    issuer = runtime.connectors.instance(issuer_row)
    assert isinstance(issuer, Issuer)
    try:
        check_issuance(
            profile,
            IssuancePolicyInput(
                key_type=KeyType(cert.key_type),
                sans=classify_sans(cert.sans),
                validity_seconds=cert.validity_seconds,
                ekus=tuple(cert.ekus),
            ),
        )
    except PolicyViolation as exc:
        raise RejectedError(f"policy: {exc.detail}") from None
    return _Order(job=job, cert=cert, profile=profile, issuer_row=issuer_row, issuer=issuer)


def _pending_key_context(job_id: str) -> str:
    """Encryption context of an order's key while it waits on the job row."""
    return f"pending-key:{job_id}"


async def _place_orders(runtime: Runtime, orders: list[_Order], worker_id: str) -> None:
    """Give each new order its key, CSR and order time, stored on the job before any CA call.

    A retried job finds its order here and sends the CA the same request again, so an issuer
    honouring ``idempotency_key`` answers with the certificate it already signed — even when the
    previous worker died between the CA's answer and storing it.
    """
    placed: list[dict[str, Any]] = []
    for order in orders:
        job, cert = order.job, order.cert
        if job.result.get("csr_pem") and (
            job.result.get("_pending_key_enc") or job.result.get("external_key")
        ):
            continue  # placed by an earlier attempt, or the client's own CSR
        key_type = KeyType(cert.key_type)
        if key_type.value.startswith("rsa"):
            key = await asyncio.to_thread(generate_key, key_type)
        else:
            key = generate_key(key_type)
        key_pem = private_key_pem(key)
        result = {
            "csr_pem": build_csr(key, cert.common_name, classify_sans(cert.sans)),
            "_pending_key_enc": runtime.box.encrypt(key_pem.encode(), _pending_key_context(job.id)),
            "requested_at": utcnow().isoformat(),
        }
        job.result = result
        placed.append({"b_id": job.id, "b_worker": worker_id, "result": result})
    if not placed:
        return
    async with runtime.sessions.begin() as session:
        table = Job.__table__
        assert isinstance(table, Table)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.claimed_by == bindparam("b_worker"))
            .values(result=bindparam("result")),
            placed,
        )


async def _sign(runtime: Runtime, order: _Order, worker_id: str) -> _Signed | None:
    """The issuer call for one placed order; None when the CA has not signed yet."""
    job, cert, profile, issuer_row, issuer = order
    order_id = job.result.get("order_id")
    csr_pem = str(job.result["csr_pem"])
    sealed = job.result.get("_pending_key_enc")
    if order_id:
        outcome = await issuer.poll(str(order_id))
    else:
        base = runtime.settings.effective_public_url
        outcome = await issuer.issue(
            IssueRequest(
                csr_pem=csr_pem,
                common_name=cert.common_name,
                sans=classify_sans(cert.sans),
                validity_seconds=cert.validity_seconds,
                ekus=tuple(cert.ekus),
                must_staple=bool(profile and profile.must_staple),
                crl_urls=(f"{base}/.well-known/pki/crl/{issuer_row.id}",),
                ocsp_urls=(f"{base}/.well-known/pki/ocsp/{issuer_row.id}",),
                ca_issuer_urls=(f"{base}/.well-known/pki/ca/{issuer_row.id}",),
                idempotency_key=job.idempotency_key,
                requested_at=_order_time(job),
                profile_id=cert.profile_id,
                certificate_id=cert.id,
            )
        )
    if isinstance(outcome, PendingIssuance):
        # Keep the order on the job so the next attempt polls instead of ordering again.
        async with runtime.sessions.begin() as session:
            result = dict(job.result) | {"order_id": outcome.order_id}
            await session.execute(update(Job).where(Job.id == job.id).values(result=result))
            if not await jobs.release_for_retry(
                session,
                job,
                worker_id=worker_id,
                delay=outcome.retry_after_seconds,
                error="awaiting the CA",
            ):
                raise JobLost(job.id)
        return None
    key_pem = (
        runtime.box.decrypt(str(sealed), _pending_key_context(job.id)).decode() if sealed else None
    )
    return _Signed(
        job=job,
        certificate_id=cert.id,
        profile=profile,
        bundle=bundle_from_pem(outcome.certificate_pem, outcome.chain_pem),
        csr_pem=csr_pem,
        key_pem=key_pem,
    )


def _order_time(job: Job) -> datetime | None:
    raw = job.result.get("requested_at")
    return datetime.fromisoformat(str(raw)) if raw else None


async def _record_issued(
    runtime: Runtime, batch: list[_Signed], worker_id: str
) -> dict[str, IssuanceOutcome]:
    """Store versions, update certificates, enqueue deployments, audit and complete the jobs."""
    now = utcnow()
    outcomes: dict[str, IssuanceOutcome] = {}
    async with runtime.sessions() as session:
        held = await jobs.still_held(session, [item.job.id for item in batch], worker_id)
        for item in batch:
            if item.job.id not in held:
                outcomes[item.job.id] = JobLost(item.job.id)
        batch = [item for item in batch if item.job.id in held]
        if not batch:
            return outcomes
        cert_ids = [item.certificate_id for item in batch]
        certs = await _by_id(session, ManagedCertificate, set(cert_ids))
        policies = await policies_of(session, cert_ids)
        latest = await session.execute(
            select(CertificateVersion.certificate_id, func.max(CertificateVersion.version))
            .where(CertificateVersion.certificate_id.in_(cert_ids))
            .group_by(CertificateVersion.certificate_id)
        )
        numbers: dict[str, int] = {row[0]: row[1] for row in latest}
        targets: dict[str, list[str]] = {c: [] for c in cert_ids}
        for cert_id, target_id in await session.execute(
            select(CertificateTarget.certificate_id, CertificateTarget.target_id).where(
                CertificateTarget.certificate_id.in_(cert_ids)
            )
        ):
            targets[cert_id].append(target_id)
        deploy_rows: list[dict[str, Any]] = []
        version_rows: list[dict[str, Any]] = []
        cert_rows: list[dict[str, Any]] = []
        audit_rows: list[dict[str, Any]] = []
        finished: dict[str, dict[str, Any]] = {}
        for item in batch:
            cert, bundle, job = certs[item.certificate_id], item.bundle, item.job
            version_id = new_id("ver")
            number = (numbers.get(cert.id) or 0) + 1
            numbers[cert.id] = number
            version_rows.append(
                {
                    "id": version_id,
                    "certificate_id": cert.id,
                    "version": number,
                    "serial_number": bundle.serial,
                    "fingerprint_sha256": bundle.fingerprint_sha256,
                    "not_before": bundle.not_before,
                    "not_after": bundle.not_after,
                    "certificate_pem": bundle.certificate_pem,
                    "chain_pem": "".join(bundle.chain_pem),
                    "csr_pem": item.csr_pem,
                    "key_type": cert.key_type,
                    "private_key_enc": (
                        runtime.box.encrypt(item.key_pem.encode(), key_context(version_id))
                        if item.key_pem is not None
                        else None
                    ),
                    "job_id": job.id,
                    "created_at": now,
                }
            )
            renewed = cert.current_version_id is not None
            cert_rows.append(
                {
                    "id": cert.id,
                    "status": "active",
                    "serial_number": bundle.serial,
                    "fingerprint_sha256": bundle.fingerprint_sha256,
                    "expires_at": bundle.not_after,
                    "renew_at": None
                    if cert.key_location == "client"  # its client renews it
                    else renew_at_for(
                        cert,
                        item.profile,
                        policies.get(cert.id),
                        version=number,
                        not_before=bundle.not_before,
                        not_after=bundle.not_after,
                        default_jitter_percent=runtime.settings.renewal_jitter_percent,
                    ),
                    "current_version_id": version_id,
                    "replace_by": None,  # a scheduled replacement is met by this version
                    "last_error": None,
                    "last_renewal_at": now if renewed else cert.last_renewal_at,
                    "updated_at": now,
                }
            )
            deployments = [
                jobs.job_values(
                    type="deployment",
                    idempotency_key=f"deploy:{version_id}:{target}",
                    certificate_id=cert.id,
                    target_id=target,
                    version_id=version_id,
                    requested_by=job.requested_by,
                    max_attempts=runtime.settings.job_max_attempts,
                    now=now,
                )
                for target in sorted(targets[cert.id])
            ]
            deploy_rows += deployments
            details = {
                "job_id": job.id,
                "version": number,
                "serial": bundle.serial,
                "not_after": bundle.not_after.isoformat(),
                "issuer_id": cert.issuer_id,
                "profile_id": cert.profile_id,
                "sans": list(cert.sans),
                "source": cert.source,
                "deployment_jobs": [d["id"] for d in deployments],
            }
            audit_rows.append(
                audit_row(
                    _actor(job),
                    "certificate.renewed" if renewed else "certificate.issued",
                    resource_type="certificate",
                    resource_id=cert.id,
                    category="cert_lifecycle",
                    details=details,
                )
            )
            finished[job.id] = {"version_id": version_id, "serial": bundle.serial}
            outcomes[job.id] = LifecycleEvent(
                type=EventType.CERTIFICATE_RENEWED if renewed else EventType.CERTIFICATE_ISSUED,
                occurred_at=now,
                certificate_id=cert.id,
                job_id=job.id,
                actor=job.requested_by,
                details=details | {"common_name": cert.common_name},
            )
        # Bulk statements (executemany) rather than the ORM unit of work: this is the hot path.
        await session.execute(insert(CertificateVersion), version_rows)
        await session.execute(update(ManagedCertificate), cert_rows)
        await record_many(session, audit_rows)
        await jobs.insert_many(session, deploy_rows)
        await jobs.complete_many(session, finished)
        await session.commit()
    return outcomes


async def execute_deployment(runtime: Runtime, job: Job, worker_id: str) -> LifecycleEvent | None:
    """Deploy the job's certificate version to its target, or withdraw it (``removal`` jobs).

    Withdrawal is what an operator asks for when revoking with ``withdraw_from_targets``; a
    target that cannot withdraw (no ``REMOVE`` capability) fails the job at once with the reason.
    """
    removal = job.type == "removal"
    async with runtime.sessions() as session:
        version = await session.get(CertificateVersion, job.version_id)
        target_row = await session.get(ConnectorInstance, job.target_id)
        cert = await session.get(ManagedCertificate, job.certificate_id)
    if version is None or cert is None:
        raise RejectedError("the certificate version to deploy no longer exists")
    if target_row is None or target_row.family != "target":
        raise RejectedError("the deployment target no longer exists")
    if not target_row.enabled:
        raise ConfigurationError(f"target {target_row.name!r} is disabled")
    target = runtime.connectors.instance(target_row)
    assert isinstance(target, Target)
    if removal and TargetCapability.REMOVE not in target.capabilities:
        raise RejectedError(f"{target_row.kind} targets cannot withdraw certificates")
    key = None
    if version.private_key_enc and not removal:
        key = Secret(runtime.box.decrypt(version.private_key_enc, key_context(version.id)).decode())
    result = await (target.remove if removal else target.deploy)(
        DeployRequest(
            certificate_id=cert.id,
            common_name=cert.common_name,
            certificate_pem=version.certificate_pem,
            chain_pem=tuple(p for p in _split_pem(version.chain_pem)),
            serial=version.serial_number,
            fingerprint_sha256=version.fingerprint_sha256,
            private_key=key,
        )
    )
    now = utcnow()
    details = {
        "job_id": job.id,
        "target_id": target_row.id,
        "serial": version.serial_number,
        "changed": result.changed,
        "message": result.message,
    }
    async with runtime.sessions() as session:
        session.add(
            Deployment(
                id=new_id("dep"),
                certificate_id=cert.id,
                target_id=target_row.id,
                version_id=version.id,
                job_id=job.id,
                status="removed" if removal else "succeeded",
                changed=result.changed,
                message=result.message,
                verified_serial=result.verified_serial,
                created_at=now,
            )
        )
        if not removal:
            await session.execute(
                update(ManagedCertificate)
                .where(ManagedCertificate.id == cert.id)
                .values(last_deployment_at=now)
            )
        record(
            session,
            _actor(job),
            "certificate.withdrawn" if removal else "certificate.deployed",
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details=details,
        )
        if not await jobs.finish(
            session,
            job,
            worker_id=worker_id,
            status="completed",
            result={"changed": result.changed, "verified_serial": result.verified_serial},
        ):
            await session.rollback()
            raise JobLost(job.id)
        await session.commit()
    if removal:
        return None
    return LifecycleEvent(
        type=EventType.CERTIFICATE_DEPLOYED,
        occurred_at=now,
        certificate_id=cert.id,
        job_id=job.id,
        actor=job.requested_by,
        details=details | {"common_name": cert.common_name},
    )


def _split_pem(text: str) -> list[str]:
    marker = "-----END CERTIFICATE-----"
    return [part.strip() + "\n" + marker + "\n" for part in text.split(marker) if part.strip()]
