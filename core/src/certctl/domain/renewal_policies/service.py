"""Creating, validating and applying renewal policies."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    CertificateProfile,
    CertificateVersion,
    ConnectorInstance,
    ManagedCertificate,
    RenewalPolicy,
)
from certctl.domain.notifications.routing import KNOWN_EVENTS
from certctl.domain.renewal_policies.schemas import (
    DEFAULT_SEVERITY_MAP,
    RenewalPolicyIn,
    RenewalPolicyOut,
    RenewalPolicyUpdate,
)
from certctl.domain.renewal_policies.timing import renew_before_days_of, renewal_time
from certctl.errors import BadRequest, Conflict

__all__ = [
    "apply_update",
    "build_policy",
    "check_policy_ids",
    "policy_id_for",
    "reschedule",
    "severity_for",
    "to_out",
]

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def policy_id_for(name: str) -> str:
    """``rp-<slug(name)>`` as in the reference; a name with no letter or digit gets a random id."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_name.lower()).strip("-")[:56].rstrip("-")
    return f"rp-{slug}" if slug else new_id("rp")


def severity_for(threshold: int, mapping: dict[str, str]) -> str:
    """The severity of an alert at ``threshold`` days: the policy's map, else a default tier."""
    if str(threshold) in mapping:
        return mapping[str(threshold)]
    if threshold == 0:
        return "critical"
    return "warning" if threshold <= 14 else "info"


def _thresholds(values: list[int]) -> list[int]:
    return sorted(set(values), reverse=True)


def _severity_map(thresholds: list[int], given: dict[str, str] | None) -> dict[str, str]:
    if given is None:
        return {str(t): severity_for(t, dict(DEFAULT_SEVERITY_MAP)) for t in thresholds}
    for key in given:
        if not key.isdigit() or int(key) not in thresholds:
            raise BadRequest(
                f"alert_severity_map key {key!r} is not one of alert_thresholds_days {thresholds}"
            )
    return {str(t): severity_for(t, given) for t in thresholds}


def _events(values: list[str] | None) -> list[str]:
    unknown = sorted(set(values or ()) - KNOWN_EVENTS)
    if unknown:
        raise BadRequest(f"unknown notify_events {unknown}; known: {sorted(KNOWN_EVENTS)}")
    return sorted(set(values or ()))


async def _notifiers(session: AsyncSession, ids: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    found = set(
        await session.scalars(
            select(ConnectorInstance.id).where(
                ConnectorInstance.id.in_(wanted), ConnectorInstance.family == "notifier"
            )
        )
    )
    missing = [i for i in wanted if i not in found]
    if missing:
        raise BadRequest(f"alert_notifier_ids are not notifiers: {missing}")
    return wanted


async def build_policy(session: AsyncSession, data: RenewalPolicyIn) -> RenewalPolicy:
    """Validate a new policy and build (not add) its row; a taken name or id is a 409."""
    policy_id = policy_id_for(data.name)
    taken = await session.scalar(
        select(RenewalPolicy.id).where(
            or_(RenewalPolicy.id == policy_id, RenewalPolicy.name == data.name)
        )
    )
    if taken:
        raise Conflict(f"a renewal policy named {data.name!r} (id {policy_id}) already exists")
    thresholds = _thresholds(data.alert_thresholds_days)
    now = utcnow()
    return RenewalPolicy(
        id=policy_id,
        name=data.name,
        renewal_window_days=data.renewal_window_days,
        renew_fraction=data.renew_fraction,
        jitter_percent=data.jitter_percent,
        auto_renew=data.auto_renew,
        max_retries=data.max_retries,
        retry_interval_seconds=data.retry_interval_seconds,
        alert_thresholds_days=thresholds,
        alert_severity_map=_severity_map(
            thresholds,
            dict(data.alert_severity_map) if data.alert_severity_map is not None else None,
        ),
        alert_notifier_ids=await _notifiers(session, data.alert_notifier_ids),
        notify_events=_events(data.notify_events),
        created_at=now,
        updated_at=now,
    )


async def apply_update(
    session: AsyncSession, row: RenewalPolicy, data: RenewalPolicyUpdate
) -> list[str]:
    """Validate and apply an edit (the id stays; caller flushes); returns the changed fields."""
    changes: dict[str, Any] = {
        f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not None
    }
    if "name" in changes and changes["name"] != row.name:
        taken = await session.scalar(
            select(RenewalPolicy.id).where(
                RenewalPolicy.name == changes["name"], RenewalPolicy.id != row.id
            )
        )
        if taken:
            raise Conflict(f"a renewal policy named {changes['name']!r} already exists")
    if "renew_fraction" in changes:
        changes["renew_fraction"] = changes["renew_fraction"] or None
        if changes["renew_fraction"] is not None and changes["renew_fraction"] < 0.1:
            raise BadRequest("renew_fraction must be between 0.1 and 0.95 (0 clears it)")
    thresholds = _thresholds(changes.get("alert_thresholds_days", row.alert_thresholds_days))
    if "alert_thresholds_days" in changes or "alert_severity_map" in changes:
        changes["alert_thresholds_days"] = thresholds
        given = changes.get("alert_severity_map")
        if given is None:
            kept = {k: v for k, v in row.alert_severity_map.items() if int(k) in thresholds}
            given = kept | {
                str(t): severity_for(t, dict(DEFAULT_SEVERITY_MAP))
                for t in thresholds
                if str(t) not in kept
            }
        changes["alert_severity_map"] = _severity_map(thresholds, given)
    if "alert_notifier_ids" in changes:
        changes["alert_notifier_ids"] = await _notifiers(session, changes["alert_notifier_ids"])
    if "notify_events" in changes:
        changes["notify_events"] = _events(changes["notify_events"])
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    return sorted(changes)


async def check_policy_ids(session: AsyncSession, ids: set[str]) -> None:
    """BadRequest unless every id names a renewal policy."""
    wanted = {i for i in ids if i}
    if not wanted:
        return
    found = set(await session.scalars(select(RenewalPolicy.id).where(RenewalPolicy.id.in_(wanted))))
    missing = sorted(wanted - found)
    if missing:
        raise BadRequest(f"unknown renewal_policy_id {missing[0]!r}")


def to_out(row: RenewalPolicy) -> RenewalPolicyOut:
    """The API form of a policy."""
    return RenewalPolicyOut(
        id=row.id,
        name=row.name,
        renewal_window_days=row.renewal_window_days,
        renew_fraction=row.renew_fraction,
        jitter_percent=row.jitter_percent,
        auto_renew=row.auto_renew,
        max_retries=row.max_retries,
        retry_interval_seconds=row.retry_interval_seconds,
        alert_thresholds_days=list(row.alert_thresholds_days),
        alert_severity_map=dict(row.alert_severity_map),
        alert_notifier_ids=list(row.alert_notifier_ids),
        notify_events=list(row.notify_events),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def reschedule(session: AsyncSession, policy_id: str, *, default_jitter_percent: int) -> int:
    """Recompute ``renew_at`` of the active certificates a policy governs (after an edit).

    A policy change applies at once, not only from the next issuance: switching
    ``auto_renew`` off must stop the renewal that is already scheduled.
    """
    profile_ids = select(CertificateProfile.id).where(
        CertificateProfile.renewal_policy_id == policy_id
    )
    rows = (
        await session.execute(
            select(ManagedCertificate, CertificateVersion, CertificateProfile)
            .join(
                CertificateVersion, CertificateVersion.id == ManagedCertificate.current_version_id
            )
            .outerjoin(CertificateProfile, CertificateProfile.id == ManagedCertificate.profile_id)
            .where(
                ManagedCertificate.status == "active",
                or_(
                    ManagedCertificate.renewal_policy_id == policy_id,
                    (ManagedCertificate.renewal_policy_id.is_(None))
                    & ManagedCertificate.profile_id.in_(profile_ids),
                ),
            )
        )
    ).all()
    policy = await session.get(RenewalPolicy, policy_id)
    updates = [
        {
            "id": cert.id,
            "renew_at": renewal_time(
                certificate_id=cert.id,
                version=version.version,
                not_before=version.not_before,
                not_after=version.not_after,
                policy=policy,
                renew_before_days=renew_before_days_of(cert, profile),
                default_jitter_percent=default_jitter_percent,
            ),
        }
        for cert, version, profile in rows
    ]
    if updates:
        await session.execute(update(ManagedCertificate), updates)
    return len(updates)
