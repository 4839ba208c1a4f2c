"""Compliance rules: CRUD, and evaluating certificates against every enabled rule.

Violations never block a write. They are kept in ``policy_violations``, one row per (rule,
certificate) with when it was first and last seen, and deleted once the certificate complies;
each newly detected violation is audited (``policy.violation_detected``), as is its resolution.
Certificates are evaluated when created or edited, and all of them periodically by
:func:`evaluate_compliance` (time passes: lead-time rules start firing without any write).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import (
    CertificateVersion,
    ComplianceViolation,
    ConnectorInstance,
    ManagedCertificate,
    PolicyRule,
)
from certctl.domain.audit.service import audit_row, record, record_many
from certctl.domain.auth.actor import SYSTEM, Actor
from certctl.domain.compliance.rules import CertificateFacts, evaluate, parse_config
from certctl.domain.compliance.schemas import PolicyIn, PolicyOut, PolicyUpdate, ViolationOut
from certctl.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "create_rule",
    "delete_rule",
    "evaluate_certificates",
    "evaluate_compliance",
    "get_rule",
    "list_violations",
    "rule_out",
    "update_rule",
]

_log = logging.getLogger("certctl.compliance")
_SKIPPED_STATUSES = ("archived",)


def rule_out(row: PolicyRule) -> PolicyOut:
    """The API form of a rule."""
    return PolicyOut(
        id=row.id,
        name=row.name,
        description=row.description,
        type=row.type,
        config=dict(row.config),
        severity=row.severity,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_rule(session: AsyncSession, rule_id: str) -> PolicyRule:
    """A rule or NotFound."""
    row = await session.get(PolicyRule, rule_id)
    if row is None:
        raise NotFound(f"policy {rule_id!r} not found")
    return row


async def _checked_config(
    session: AsyncSession, rule_type: str, raw: dict[str, Any]
) -> dict[str, Any]:
    config = parse_config(rule_type, raw)
    wanted = set(config.get("allowed_issuer_ids") or [])
    if wanted:
        known = set(
            await session.scalars(
                select(ConnectorInstance.id).where(
                    ConnectorInstance.id.in_(wanted), ConnectorInstance.family == "issuer"
                )
            )
        )
        if wanted - known:
            raise BadRequest(
                f"invalid AllowedIssuers config: unknown issuer ids {sorted(wanted - known)}"
            )
    return config


async def _flush_named(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a policy named {name!r} already exists") from None


async def create_rule(session: AsyncSession, data: PolicyIn, actor: Actor) -> PolicyRule:
    """Validate and add a rule (the caller commits)."""
    now = utcnow()
    row = PolicyRule(
        id=new_id("rule"),
        name=data.name,
        description=data.description,
        type=data.type,
        config=await _checked_config(session, data.type, data.config),
        severity=data.severity,
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await _flush_named(session, data.name)
    record(
        session,
        actor,
        "policy.create",
        resource_type="policy",
        resource_id=row.id,
        details={"name": row.name, "type": row.type, "severity": row.severity},
    )
    return row


async def update_rule(
    session: AsyncSession, row: PolicyRule, data: PolicyUpdate, actor: Actor
) -> PolicyRule:
    """Apply an edit (caller commits); the config is revalidated against the resulting type.

    Disabling a rule clears its violations; other edits take effect on the next evaluation.
    """
    changed: list[str] = []
    if data.type is not None or data.config is not None:
        rule_type = data.type or row.type
        row.config = await _checked_config(
            session, rule_type, data.config if data.config is not None else dict(row.config)
        )
        row.type = rule_type
        changed += [f for f in ("type", "config") if getattr(data, f) is not None]
    for field in ("name", "description", "severity", "enabled"):
        value = getattr(data, field)
        if value is not None:
            setattr(row, field, value)
            changed.append(field)
    row.updated_at = utcnow()
    await _flush_named(session, data.name or row.name)
    if data.enabled is False:
        await session.execute(
            delete(ComplianceViolation).where(ComplianceViolation.rule_id == row.id)
        )
    record(
        session,
        actor,
        "policy.update",
        resource_type="policy",
        resource_id=row.id,
        details={"fields": sorted(changed)},
    )
    return row


async def delete_rule(session: AsyncSession, row: PolicyRule, actor: Actor) -> None:
    """Delete a rule and its violations (caller commits)."""
    await session.execute(delete(ComplianceViolation).where(ComplianceViolation.rule_id == row.id))
    await session.delete(row)
    record(
        session,
        actor,
        "policy.delete",
        resource_type="policy",
        resource_id=row.id,
        details={"name": row.name, "type": row.type},
    )


def _violations_query() -> Select[ComplianceViolation, str]:
    return select(ComplianceViolation, PolicyRule.name).join(
        PolicyRule, PolicyRule.id == ComplianceViolation.rule_id
    )


def _violation_out(row: ComplianceViolation, rule_name: str) -> ViolationOut:
    return ViolationOut(
        id=row.id,
        rule_id=row.rule_id,
        rule_name=rule_name,
        certificate_id=row.certificate_id,
        severity=row.severity,
        message=row.message,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


async def list_violations(
    session: AsyncSession,
    *,
    rule_id: str | None = None,
    certificate_id: str | None = None,
    offset: int,
    limit: int,
) -> tuple[list[ViolationOut], int]:
    """A page of current violations of one rule or one certificate, oldest first."""
    query = _violations_query()
    if rule_id is not None:
        query = query.where(ComplianceViolation.rule_id == rule_id)
    if certificate_id is not None:
        query = query.where(ComplianceViolation.certificate_id == certificate_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.execute(
        query.order_by(ComplianceViolation.first_seen_at, ComplianceViolation.id)
        .offset(offset)
        .limit(limit)
    )
    return [_violation_out(v, name) for v, name in rows], int(total or 0)


async def _facts(
    session: AsyncSession, certs: Sequence[ManagedCertificate]
) -> dict[str, CertificateFacts]:
    version_ids = [c.current_version_id for c in certs if c.current_version_id]
    lifetimes: dict[str, int] = {}
    if version_ids:
        for version_id, not_before, not_after in await session.execute(
            select(
                CertificateVersion.id, CertificateVersion.not_before, CertificateVersion.not_after
            ).where(CertificateVersion.id.in_(version_ids))
        ):
            lifetimes[version_id] = int((not_after - not_before).total_seconds())
    return {
        c.id: CertificateFacts(
            issuer_id=c.issuer_id,
            sans=tuple(c.sans),
            tags=dict(c.tags),
            environment=c.environment,
            expires_at=c.expires_at,
            lifetime_seconds=lifetimes.get(c.current_version_id or "", c.validity_seconds),
        )
        for c in certs
    }


async def evaluate_certificates(
    session: AsyncSession,
    certs: Sequence[ManagedCertificate],
    actor: Actor,
    *,
    rules: Sequence[PolicyRule] | None = None,
) -> int:
    """Re-evaluate ``certs`` against every enabled rule in the caller's transaction.

    Stores what is violated now and deletes what no longer is; returns how many violations
    the certificates have. A constant number of statements per call, whatever its size.
    """
    if not certs:
        return 0
    if rules is None:
        rules = list(await session.scalars(select(PolicyRule).where(PolicyRule.enabled.is_(True))))
    now = utcnow()
    facts = await _facts(session, certs)
    found: dict[tuple[str, str], tuple[PolicyRule, str]] = {}
    for cert in certs:
        if cert.status in _SKIPPED_STATUSES:
            continue
        for rule in rules:
            message = evaluate(rule.type, rule.config, facts[cert.id], now)
            if message is not None:
                found[(rule.id, cert.id)] = (rule, message)
    existing = {
        (v.rule_id, v.certificate_id): v
        for v in await session.scalars(
            select(ComplianceViolation).where(
                ComplianceViolation.certificate_id.in_([c.id for c in certs])
            )
        )
    }
    await _store(session, found, existing, actor, now)
    return len(found)


async def _store(
    session: AsyncSession,
    found: dict[tuple[str, str], tuple[PolicyRule, str]],
    existing: dict[tuple[str, str], ComplianceViolation],
    actor: Actor,
    now: Any,
) -> None:
    audits: list[dict[str, Any]] = []
    resolved = [v for key, v in existing.items() if key not in found]
    if resolved:
        await session.execute(
            delete(ComplianceViolation).where(ComplianceViolation.id.in_([v.id for v in resolved]))
        )
        audits += [
            audit_row(
                actor,
                "policy.violation_resolved",
                resource_type="certificate",
                resource_id=v.certificate_id,
                category="config",
                details={"rule_id": v.rule_id, "severity": v.severity},
            )
            for v in resolved
        ]
    seen = [
        {"id": existing[key].id, "last_seen_at": now, "message": msg, "severity": rule.severity}
        for key, (rule, msg) in found.items()
        if key in existing
    ]
    if seen:
        await session.execute(update(ComplianceViolation), seen)
    new = [
        {
            "id": new_id("violation"),
            "rule_id": rule.id,
            "certificate_id": cert_id,
            "severity": rule.severity,
            "message": msg,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for (rule_id, cert_id), (rule, msg) in found.items()
        if (rule_id, cert_id) not in existing
    ]
    if new:
        insert = dialect_insert(session)
        inserted = set(
            await session.scalars(
                insert(ComplianceViolation)
                .values(new)
                .on_conflict_do_nothing(index_elements=["rule_id", "certificate_id"])
                .returning(ComplianceViolation.id)
            )
        )
        audits += [
            audit_row(
                actor,
                "policy.violation_detected",
                resource_type="certificate",
                resource_id=row["certificate_id"],
                outcome="violation",
                category="config",
                details={
                    "rule_id": row["rule_id"],
                    "rule_name": found[(row["rule_id"], row["certificate_id"])][0].name,
                    "severity": row["severity"],
                    "message": row["message"],
                },
            )
            for row in new
            if row["id"] in inserted
        ]
    await record_many(session, audits)


async def evaluate_compliance(runtime: Runtime, batch: int = 500) -> int:
    """Re-evaluate every certificate that is not archived; returns how many were evaluated.

    Walks certificates by id in batches of ``batch``, one short transaction each, with the
    rules read once. Violations of archived certificates are dropped. Safe to run on several
    processes at once: a violation row is unique per (rule, certificate) and inserted with
    ``ON CONFLICT DO NOTHING``, so concurrent runs neither duplicate rows nor audit twice.
    """
    async with runtime.sessions.begin() as session:
        rules = list(await session.scalars(select(PolicyRule).where(PolicyRule.enabled.is_(True))))
        await session.execute(
            delete(ComplianceViolation).where(
                ComplianceViolation.certificate_id.in_(
                    select(ManagedCertificate.id).where(
                        ManagedCertificate.status.in_(_SKIPPED_STATUSES)
                    )
                )
            )
        )
    count = 0
    after = ""
    while True:
        async with runtime.sessions.begin() as session:
            certs = list(
                await session.scalars(
                    select(ManagedCertificate)
                    .where(
                        ManagedCertificate.id > after,
                        ManagedCertificate.status.not_in(_SKIPPED_STATUSES),
                    )
                    .order_by(ManagedCertificate.id)
                    .limit(batch)
                )
            )
            if not certs:
                break
            await evaluate_certificates(session, certs, SYSTEM, rules=rules)
        count += len(certs)
        after = certs[-1].id
    if count:
        _log.debug("compliance evaluated %d certificate(s) against %d rule(s)", count, len(rules))
    return count
