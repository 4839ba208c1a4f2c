"""Revoking managed certificates and signing the CRLs of issuers that hold their CA key.

Revocation state belongs to the core. A revocation is recorded locally first — one
``certificate_revocations`` row per revoked serial, the certificate marked ``revoked``, its open
jobs cancelled and an audit row, all in one transaction — and only then is the issuer told
(when it declares :attr:`IssuerCapability.REVOKE`) and its CRL re-signed (when it declares
:attr:`IssuerCapability.CRL_SIGNING`). A connector failure after the commit is recorded on the
row (``issuer_error``) and never undoes the local revocation.

Revoked certificates are *not* withdrawn from the targets they were deployed to; withdrawal is
a possible later option. Relying parties learn of the revocation from the CRL.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateRevocation,
    CertificateTarget,
    CertificateVersion,
    ConnectorInstance,
    CrlState,
    Job,
    ManagedCertificate,
)
from certctl.domain.approvals import service as approvals
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.events import publish
from certctl.domain.jobs import service as jobs
from certctl.domain.ocsp.service import note_revocations
from certctl.domain.revocation.schemas import REASON_NAMES, RevocationOut, RevokedVersionOut
from certctl.errors import BadRequest, Conflict, NotFound
from certctl_sdk import EventType, Issuer, LifecycleEvent
from certctl_sdk.issuer import CrlEntry, CrlRequest, IssuerCapability, RevokeRequest
from certctl_sdk.models import RevocationReason

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.runtime import Runtime

__all__ = [
    "CRL_MAX_AGE_SECONDS",
    "PlannedRevocation",
    "crl_for_issuer",
    "finish_revocations",
    "generate_crl",
    "load_for_bulk",
    "regenerate_crls",
    "revoke_certificates",
]

_log = logging.getLogger("certctl.revocation")

CRL_MAX_AGE_SECONDS = 3600
"""Upper bound of a CRL response's ``max-age``, so a new revocation reaches caches within it."""


class PlannedRevocation(NamedTuple):
    """What one certificate's revocation wrote, kept as plain values for after the commit."""

    certificate_id: str
    issuer_id: str
    rows: list[dict[str, Any]]
    certificate_pems: dict[str, str]
    """version id → certificate PEM (what the issuer needs to revoke it)."""
    cancelled_jobs: list[str]


async def load_for_bulk(
    session: AsyncSession, certificate_ids: Sequence[str]
) -> list[ManagedCertificate]:
    """The named certificates in request order (duplicates once); unknown ids are a 400."""
    wanted = list(dict.fromkeys(certificate_ids))
    found = {
        c.id: c
        for c in await session.scalars(
            select(ManagedCertificate).where(ManagedCertificate.id.in_(wanted))
        )
    }
    missing = [c for c in wanted if c not in found]
    if missing:
        raise BadRequest(f"unknown certificate ids: {missing}")
    return [found[c] for c in wanted]


async def revoke_certificates(
    session: AsyncSession,
    certs: Sequence[ManagedCertificate],
    reason: RevocationReason,
    versions: str,
    actor: Actor,
) -> list[PlannedRevocation]:
    """Record the revocation of every certificate (the caller commits); all or nothing.

    ``versions`` is ``"current"`` (the version in use) or ``"all"`` (every issued version not
    revoked yet). A certificate already revoked, or never issued, raises 409 naming it before
    anything is added.
    """
    ids = [c.id for c in certs]
    for cert in certs:
        if cert.status == "revoked":
            raise Conflict(f"certificate {cert.id} is already revoked")
        if cert.current_version_id is None:
            raise Conflict(f"certificate {cert.id} has not been issued: there is nothing to revoke")
    query = select(CertificateVersion).where(CertificateVersion.certificate_id.in_(ids))
    if versions == "current":
        query = query.where(
            CertificateVersion.id.in_([c.current_version_id for c in certs if c.current_version_id])
        )
    by_cert: dict[str, list[CertificateVersion]] = {c: [] for c in ids}
    for version in await session.scalars(query.order_by(CertificateVersion.version)):
        by_cert[version.certificate_id].append(version)
    already = set(
        await session.scalars(
            select(CertificateRevocation.version_id).where(
                CertificateRevocation.certificate_id.in_(ids)
            )
        )
    )
    for cert in certs:
        by_cert[cert.id] = [v for v in by_cert[cert.id] if v.id not in already]
        if not by_cert[cert.id]:
            raise Conflict(f"certificate {cert.id} is already revoked")

    open_jobs = list(
        await session.execute(
            select(Job.id, Job.certificate_id).where(
                Job.certificate_id.in_(ids),
                or_(
                    Job.status == "pending",
                    # A running issuance would otherwise record a fresh version after the
                    # revocation; cancelling it makes its lease-guarded completion fail.
                    and_(Job.status == "running", Job.type.in_(("issuance", "renewal"))),
                ),
            )
        )
    )
    now = utcnow()
    if open_jobs:
        await session.execute(
            update(Job)
            .where(Job.id.in_([j for j, _ in open_jobs]), Job.status.in_(("pending", "running")))
            .values(status="cancelled", completed_at=now, last_error="certificate revoked")
        )
    for cert in certs:
        # Waiting for approval: nothing to sign any more, so the request closes too.
        await approvals.cancel_for_certificate(session, cert.id, actor, why="certificate revoked")
    planned: list[PlannedRevocation] = []
    for cert in certs:
        rows = [
            {
                "id": new_id("rev"),
                "certificate_id": cert.id,
                "version_id": v.id,
                "issuer_id": cert.issuer_id,
                "serial_number": v.serial_number,
                "reason": int(reason),
                "revoked_at": now,
                "revoked_by": actor.name,
                "issuer_notified": False,
                "issuer_error": None,
            }
            for v in by_cert[cert.id]
        ]
        session.add_all(CertificateRevocation(**row) for row in rows)
        cancelled = [j for j, c in open_jobs if c == cert.id]
        cert.status = "revoked"
        cert.renew_at = None
        cert.updated_at = now
        record(
            session,
            actor,
            "certificate.revoke",
            resource_type="certificate",
            resource_id=cert.id,
            category="cert_lifecycle",
            details={
                "reason": REASON_NAMES[int(reason)],
                "versions": versions,
                "serials": [r["serial_number"] for r in rows],
                "issuer_id": cert.issuer_id,
                "cancelled_jobs": cancelled,
            },
        )
        planned.append(
            PlannedRevocation(
                certificate_id=cert.id,
                issuer_id=cert.issuer_id,
                rows=rows,
                certificate_pems={v.id: v.certificate_pem for v in by_cert[cert.id]},
                cancelled_jobs=cancelled,
            )
        )
    return planned


async def enqueue_withdrawals(
    session: AsyncSession,
    certs: Sequence[ManagedCertificate],
    actor: Actor,
    *,
    max_attempts: int,
) -> list[str]:
    """Queue a ``removal`` job per (certificate, target) for the revoked current versions.

    Only when the operator asks (``withdraw_from_targets``): pulling a certificate off a live
    server can take a site down, so revocation alone never does it. Targets that cannot
    withdraw fail their job at once with the reason.
    """
    ids = [c.id for c in certs]
    versions = {c.id: c.current_version_id for c in certs}
    now = utcnow()
    rows = [
        jobs.job_values(
            type="removal",
            idempotency_key=f"remove:{versions[cert_id]}:{target_id}",
            certificate_id=cert_id,
            target_id=target_id,
            version_id=versions[cert_id],
            requested_by=actor.name,
            max_attempts=max_attempts,
            now=now,
        )
        for cert_id, target_id in await session.execute(
            select(CertificateTarget.certificate_id, CertificateTarget.target_id)
            .where(CertificateTarget.certificate_id.in_(ids))
            .order_by(CertificateTarget.certificate_id, CertificateTarget.target_id)
        )
        if versions.get(cert_id)
    ]
    await jobs.insert_many(session, rows)
    return [row["id"] for row in rows]


def _issuer(runtime: Runtime, row: ConnectorInstance) -> Issuer[Any]:
    issuer = runtime.connectors.instance(row)
    assert isinstance(issuer, Issuer)
    return issuer


async def finish_revocations(
    runtime: Runtime, planned: Sequence[PlannedRevocation]
) -> list[RevocationOut]:
    """After the commit: tell the issuers that can revoke, then re-sign their CRLs.

    Failures are recorded (``issuer_error``) or logged; the local revocation stands either way.
    """
    issuer_ids = sorted({p.issuer_id for p in planned})
    note_revocations(runtime, (row for item in planned for row in item.rows))
    async with runtime.sessions() as session:
        issuer_rows = {
            row.id: row
            for row in await session.scalars(
                select(ConnectorInstance).where(ConnectorInstance.id.in_(issuer_ids))
            )
        }
    for item in planned:
        issuer_row = issuer_rows.get(item.issuer_id)
        try:
            issuer = _issuer(runtime, issuer_row) if issuer_row is not None else None
        except Exception as exc:  # noqa: BLE001 - e.g. the issuer's plugin is not installed
            issuer, error = None, f"issuer unavailable: {exc}"
            for row in item.rows:
                row["issuer_error"] = error
        if issuer is None or IssuerCapability.REVOKE not in issuer.capabilities:
            continue
        for row in item.rows:
            try:
                await issuer.revoke(
                    RevokeRequest(
                        serial=row["serial_number"],
                        certificate_pem=item.certificate_pems[row["version_id"]],
                        reason=RevocationReason(row["reason"]),
                        revoked_at=row["revoked_at"],
                    )
                )
                row["issuer_notified"] = True
            except Exception as exc:  # noqa: BLE001 - recorded on the row, never undoes it
                _log.warning("issuer %s refused to revoke %s: %s", item.issuer_id, row["id"], exc)
                row["issuer_error"] = str(exc) or type(exc).__name__
    outcomes = [
        {"id": r["id"], "issuer_notified": r["issuer_notified"], "issuer_error": r["issuer_error"]}
        for item in planned
        for r in item.rows
    ]
    async with runtime.sessions() as session:
        await session.execute(update(CertificateRevocation), outcomes)
        await session.commit()

    crl_numbers: dict[str, int | None] = {}
    for issuer_id in issuer_ids:
        crl_numbers[issuer_id] = None
        issuer_row = issuer_rows.get(issuer_id)
        if issuer_row is None or not _signs_crls(runtime, issuer_row):
            continue
        try:
            crl_numbers[issuer_id] = (await generate_crl(runtime, issuer_row)).crl_number
        except Exception:  # noqa: BLE001 - the next GET of the CRL tries again
            _log.exception("re-signing the CRL of issuer %s failed", issuer_id)
    await publish(
        runtime,
        *(
            LifecycleEvent(
                type=EventType.CERTIFICATE_REVOKED,
                occurred_at=item.rows[0]["revoked_at"],
                certificate_id=item.certificate_id,
                actor=str(item.rows[0]["revoked_by"]),
                details={
                    # One revocation per certificate (a second is a 409), so this is stable.
                    "event_id": f"revoke:{item.certificate_id}",
                    "reason": REASON_NAMES[item.rows[0]["reason"]],
                    "serials": [r["serial_number"] for r in item.rows],
                    "issuer_id": item.issuer_id,
                    "message": (
                        f"certificate {item.certificate_id} revoked "
                        f"({REASON_NAMES[item.rows[0]['reason']]})"
                    ),
                },
            )
            for item in planned
            if item.rows
        ),
    )
    return [
        RevocationOut(
            certificate_id=item.certificate_id,
            status="revoked",
            revoked=[
                RevokedVersionOut(
                    version_id=r["version_id"],
                    serial_number=r["serial_number"],
                    reason=REASON_NAMES[r["reason"]],
                    revoked_at=r["revoked_at"],
                    issuer_notified=r["issuer_notified"],
                    issuer_error=r["issuer_error"],
                )
                for r in item.rows
            ],
            cancelled_jobs=item.cancelled_jobs,
            crl_number=crl_numbers.get(item.issuer_id),
        )
        for item in planned
    ]


def _signs_crls(runtime: Runtime, row: ConnectorInstance) -> bool:
    try:
        spec = runtime.connectors.registry.get(row.family, row.kind)
    except Exception:  # noqa: BLE001 - kind not installed
        return False
    return IssuerCapability.CRL_SIGNING in getattr(spec.cls, "capabilities", frozenset())


def _etag(der: bytes) -> str:
    return '"' + hashlib.sha256(der).hexdigest() + '"'


async def generate_crl(
    runtime: Runtime, row: ConnectorInstance, *, stale_before: datetime | None = None
) -> CrlState:
    """Sign a complete CRL over every revocation of the issuer and store it.

    The CRL number is incremented by an ``UPDATE … RETURNING`` that holds the row (PostgreSQL)
    or the database's write lock (SQLite) until the new CRL is stored, so concurrent generations
    get strictly increasing numbers and the stored CRL is always the newest. With
    ``stale_before``, a CRL generated after that instant is kept and returned instead.
    """
    issuer = _issuer(runtime, row)
    if IssuerCapability.CA_CERTIFICATES in issuer.capabilities:
        # Load the CA now: a connector that reads or writes its own state store while we hold
        # SQLite's write lock below would wait for that lock.
        await issuer.ca_certificates()
    validity = timedelta(hours=runtime.settings.crl_validity_hours)
    for attempt in range(3):
        try:
            async with runtime.sessions() as session:
                bump = (
                    update(CrlState)
                    .where(CrlState.issuer_id == row.id)
                    .values(crl_number=CrlState.crl_number + 1)
                    .returning(CrlState.crl_number)
                    .execution_options(synchronize_session=False)
                )
                if stale_before is not None:
                    bump = bump.where(CrlState.this_update <= stale_before)
                number = await session.scalar(bump)
                if number is None:
                    existing = await session.get(CrlState, row.id)
                    if existing is not None:
                        if stale_before is not None:
                            return existing  # fresh enough: another request just re-signed it
                        # The first CRL was stored between our UPDATE and this read: go again,
                        # so this generation gets the next number instead of reporting that one.
                        continue
                now = utcnow().replace(microsecond=0)
                entries = await _crl_entries(session, row.id)
                der = await issuer.sign_crl(
                    CrlRequest(
                        crl_number=number or 1,
                        this_update=now,
                        next_update=now + validity,
                        entries=entries,
                    )
                )
                values = {
                    "crl_der": der,
                    "this_update": now,
                    "next_update": now + validity,
                    "etag": _etag(der),
                    "generated_at": utcnow(),
                }
                if number is None:
                    session.add(CrlState(issuer_id=row.id, crl_number=1, **values))
                else:
                    await session.execute(
                        update(CrlState).where(CrlState.issuer_id == row.id).values(**values)
                    )
                await session.commit()
                return CrlState(issuer_id=row.id, crl_number=number or 1, **values)
        except IntegrityError:
            # Two first generations raced to insert the row; the loser increments next time.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _crl_entries(session: AsyncSession, issuer_id: str) -> tuple[CrlEntry, ...]:
    """Every revocation of the issuer as CRL entries: plain columns, no ORM objects per row."""
    reasons = {int(r): r for r in RevocationReason}
    rows = await session.execute(
        select(
            CertificateRevocation.serial_number,
            CertificateRevocation.revoked_at,
            CertificateRevocation.reason,
        )
        .where(CertificateRevocation.issuer_id == issuer_id)
        .order_by(CertificateRevocation.revoked_at, CertificateRevocation.id)
    )
    return tuple(
        CrlEntry(serial=serial, revoked_at=revoked_at, reason=reasons[reason])
        for serial, revoked_at, reason in rows
    )


async def regenerate_crls(runtime: Runtime, *, force: bool = False) -> int:
    """Re-sign the CRL of every CRL-signing issuer whose CRL is missing or past half its validity.

    Periodic job (suggested every 15 minutes; with the default 24 h validity a CRL is re-signed
    about every 12 h, so a revocation-free CRL never nears nextUpdate). ``force`` re-signs all.
    One failing issuer is logged and does not stop the others. Returns how many were signed.

    Leader-only preferred: on several replicas each CRL still gets strictly increasing numbers
    and the newest is kept (the number is bumped under a row lock, and a CRL made meanwhile by
    another process is kept instead), but replicas racing on the same issuer may sign twice.
    """
    async with runtime.sessions() as session:
        issuers = list(
            await session.scalars(
                select(ConnectorInstance).where(
                    ConnectorInstance.family == "issuer", ConnectorInstance.enabled.is_(True)
                )
            )
        )
        states = {
            issuer_id: (number, this_update, next_update)
            for issuer_id, number, this_update, next_update in await session.execute(
                select(
                    CrlState.issuer_id,
                    CrlState.crl_number,
                    CrlState.this_update,
                    CrlState.next_update,
                )
            )
        }
    now = utcnow()
    stale_before = now if force else now - timedelta(hours=runtime.settings.crl_validity_hours) / 2
    signed = 0
    for row in issuers:
        if not _signs_crls(runtime, row):
            continue
        state = states.get(row.id)
        if state is not None and state[1] > stale_before and state[2] > now:
            continue
        try:
            result = await generate_crl(runtime, row, stale_before=stale_before)
        except Exception:  # noqa: BLE001 - one bad issuer does not stop the others
            _log.exception("re-signing the CRL of issuer %s failed", row.id)
            continue
        if state is None or result.crl_number != state[0]:
            signed += 1
    return signed


async def crl_for_issuer(runtime: Runtime, issuer_id: str) -> CrlState:
    """The issuer's current CRL, re-signed first when absent or past half its validity."""
    async with runtime.sessions() as session:
        row = await session.get(ConnectorInstance, issuer_id)
        state = await session.get(CrlState, issuer_id)
    if row is None or row.family != "issuer" or not _signs_crls(runtime, row):
        raise NotFound(f"no CRL is published for issuer {issuer_id!r}")
    now = utcnow()
    stale_before = now - timedelta(hours=runtime.settings.crl_validity_hours) / 2
    if state is not None and state.next_update <= now:
        stale_before = now
    if state is None or state.this_update <= stale_before or state.next_update <= now:
        state = await generate_crl(runtime, row, stale_before=stale_before)
    return state
