"""Which notifier instances receive which notifications.

The rule, in full:

* A notification about a certificate goes to the ``alert_notifier_ids`` of the certificate's
  renewal policy (its own ``renewal_policy_id``, else its profile's); an empty list, or no
  policy at all, means every enabled notifier.
* Lifecycle events (issued, renewed, deployed, failures, revocation, approvals) are further
  filtered by the policy's ``notify_events``; an empty list means every event. Expiry alerts
  are governed by the policy's thresholds instead, and are never filtered out by it.
* Notifications about no certificate (and certificates without a policy) go to every enabled
  notifier; the digest goes to ``CERTCTL_DIGEST_NOTIFIER_IDS`` (empty: every enabled notifier).
* Disabled notifiers receive nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.models import CertificateProfile, ConnectorInstance, ManagedCertificate
from certctl.db.models import RenewalPolicy as PolicyRow
from certctl_sdk import EventType

__all__ = [
    "EXPIRY_EVENT",
    "KNOWN_EVENTS",
    "enabled_notifiers",
    "policies_of",
    "route",
]

EXPIRY_EVENT = str(EventType.CERTIFICATE_EXPIRING)
KNOWN_EVENTS: frozenset[str] = frozenset(
    {str(e) for e in EventType}
    | {"approval.requested", "approval.approved", "approval.rejected", "digest"}
)
"""Event names a policy's ``notify_events`` may list."""


async def enabled_notifiers(session: AsyncSession) -> list[str]:
    """Ids of every enabled notifier instance, in a stable order."""
    return list(
        await session.scalars(
            select(ConnectorInstance.id)
            .where(ConnectorInstance.family == "notifier", ConnectorInstance.enabled.is_(True))
            .order_by(ConnectorInstance.id)
        )
    )


async def policies_of(
    session: AsyncSession, certificate_ids: Iterable[str]
) -> dict[str, PolicyRow | None]:
    """The effective renewal policy of each certificate (its own, else its profile's)."""
    wanted = sorted({c for c in certificate_ids if c})
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(
                ManagedCertificate.id,
                ManagedCertificate.renewal_policy_id,
                CertificateProfile.renewal_policy_id,
            )
            .outerjoin(CertificateProfile, CertificateProfile.id == ManagedCertificate.profile_id)
            .where(ManagedCertificate.id.in_(wanted))
        )
    ).all()
    policy_ids = {own or inherited for _, own, inherited in rows if own or inherited}
    policies = (
        {
            p.id: p
            for p in await session.scalars(select(PolicyRow).where(PolicyRow.id.in_(policy_ids)))
        }
        if policy_ids
        else {}
    )
    return {cert: policies.get(own or inherited or "") for cert, own, inherited in rows}


def route(event: str, policy: PolicyRow | None, enabled: Sequence[str]) -> list[str]:
    """The notifier ids that receive ``event`` for a certificate governed by ``policy``."""
    if policy is None:
        return list(enabled)
    if event != EXPIRY_EVENT and policy.notify_events and event not in policy.notify_events:
        return []
    if not policy.alert_notifier_ids:
        return list(enabled)
    chosen = set(policy.alert_notifier_ids)
    return [n for n in enabled if n in chosen]
