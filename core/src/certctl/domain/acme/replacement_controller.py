"""``POST /api/v1/certificates/replacements``: replace many certificates early, by a deadline.

For a key compromise, a CA rotation or a mis-issuance an operator must get a fleet replaced by
a date. This sets ``replace_by`` on the chosen certificates: ACME clients see it through ARI
(the renewal window closes at the deadline, see ``ari.py``), and certificates whose key
certctl holds get their own renewal moved inside the first half of the time left, spread
per certificate so a fleet does not renew in one burst. A new version clears ``replace_by``.

``explanation_url`` has no column to live in (migration 0012 added only ``replace_by``): it is
kept in the audit row and echoed in the response, and ARI does not announce it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody
from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import CertificateProfile, ConnectorInstance, ManagedCertificate
from certctl.domain.audit.service import record
from certctl.domain.renewal_policies.timing import jitter_fraction
from certctl.errors import BadRequest, NotFound
from certctl.lib.deps import ActorDep, SessionDep

__all__ = ["ReplacementController", "ReplacementIn", "ReplacementOut"]

DEFAULT_DEADLINE = timedelta(hours=24)
_INACTIVE = ("archived", "revoked")

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class ReplacementIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which certificates (ids, and/or every one of a profile or issuer) and by when."""

    certificate_ids: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=10000)] | None = None
    profile_id: Id | None = None
    issuer_id: Id | None = None
    replace_by: datetime | None = None
    """RFC 3339, in the future; default 24 hours from now."""
    explanation_url: (
        Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://[^\s]+$")] | None
    ) = None
    """A page telling the certificates' owners why (audited and returned, not stored)."""
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ReplacementOut(msgspec.Struct, kw_only=True):
    """What was scheduled."""

    replace_by: datetime
    certificate_ids: list[str]
    """Every certificate now due for replacement (client-held keys renew through ARI)."""
    renewals_scheduled: int
    """Certificates whose key certctl holds and whose renewal moved forward."""
    explanation_url: str | None = None


class ReplacementController(Controller):
    """Scheduled mass replacement."""

    path = "/api/v1/certificates/replacements"
    tags = ["Certificates"]

    @post("/", opt={"permission": "cert.edit"}, status_code=200)
    async def schedule(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[ReplacementIn]
    ) -> ReplacementOut:
        """Set ``replace_by`` on the selected active certificates; all or nothing."""
        now = utcnow()
        deadline = data.replace_by or now + DEFAULT_DEADLINE
        if deadline.tzinfo is None:
            raise BadRequest("replace_by needs a time zone (e.g. 2026-12-24T12:00:00Z)")
        if deadline <= now:
            raise BadRequest("replace_by must be in the future")
        if data.certificate_ids is None and data.profile_id is None and data.issuer_id is None:
            raise BadRequest("name certificate_ids, a profile_id or an issuer_id")
        if (
            data.profile_id is not None
            and await session.get(CertificateProfile, data.profile_id) is None
        ):
            raise NotFound(f"no profile {data.profile_id!r}")
        if data.issuer_id is not None:
            issuer = await session.get(ConnectorInstance, data.issuer_id)
            if issuer is None or issuer.family != "issuer":
                raise NotFound(f"no issuer {data.issuer_id!r}")
        query = select(ManagedCertificate).where(ManagedCertificate.status.not_in(_INACTIVE))
        if data.certificate_ids is not None:
            wanted = set(data.certificate_ids)
            query = query.where(ManagedCertificate.id.in_(wanted))
        if data.profile_id is not None:
            query = query.where(ManagedCertificate.profile_id == data.profile_id)
        if data.issuer_id is not None:
            query = query.where(ManagedCertificate.issuer_id == data.issuer_id)
        certs = list(await session.scalars(query.order_by(ManagedCertificate.id).with_for_update()))
        if data.certificate_ids is not None:
            missing = sorted(wanted - {c.id for c in certs})
            if missing:
                raise NotFound(
                    f"no active certificate matches {len(missing)} of the ids", missing=missing
                )
        scheduled = 0
        for cert in certs:
            cert.replace_by = deadline
            cert.updated_at = now
            if cert.key_location == "server":
                spread = (deadline - now) / 2 * jitter_fraction(cert.id, 0)
                if cert.renew_at is None or cert.renew_at > now + spread:
                    cert.renew_at = now + spread
                    scheduled += 1
        record(
            session,
            actor,
            "certificate.replacement.schedule",
            resource_type="certificate",
            resource_id=data.profile_id or data.issuer_id or "selection",
            category="cert_lifecycle",
            details={
                "replace_by": deadline.isoformat(),
                "reason": data.reason,
                "explanation_url": data.explanation_url,
                "count": len(certs),
                "certificate_ids": [c.id for c in certs][:1000],
                "renewals_scheduled": scheduled,
            },
        )
        await session.commit()
        return ReplacementOut(
            replace_by=deadline,
            certificate_ids=[c.id for c in certs],
            renewals_scheduled=scheduled,
            explanation_url=data.explanation_url,
        )
