"""``/api/v1/admin/scep``: profiles, one-time challenge passwords, Intune trust and counters.

Every route needs ``scep.admin``: a challenge password admits a device to a profile, which is
as strong as a certificate-issuing credential.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

import msgspec
from cryptography.hazmat.primitives import serialization
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import ScepChallenge
from certctl.domain.audit.service import record
from certctl.domain.scep.challenge import mint_otp, otp_status
from certctl.domain.scep.service import ScepService
from certctl.errors import BadRequest, NotFound
from certctl.lib.deps import ActorDep, SessionDep

__all__ = ["ChallengeCreated", "ChallengeIn", "ChallengeOut", "ScepAdminController"]

_ADMIN = {"permission": "scep.admin"}


class ChallengeIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A one-time challenge password for one SCEP profile (``""``: the legacy ``/scep``)."""

    profile: Annotated[str, msgspec.Meta(max_length=64)]
    expires_in_seconds: Annotated[int, msgspec.Meta(ge=60)] = 86400
    label: Annotated[str, msgspec.Meta(max_length=255)] = ""
    """Free text, e.g. the device it is meant for."""


class ChallengeCreated(msgspec.Struct, kw_only=True):
    """The one response that carries the password."""

    id: str
    challenge: str
    profile: str
    label: str
    expires_at: datetime


class ChallengeOut(msgspec.Struct, kw_only=True):
    id: str
    profile: str
    label: str
    status: str
    """``unused``, ``used`` or ``expired``."""
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: str


def _out(row: ScepChallenge, now: datetime) -> ChallengeOut:
    return ChallengeOut(
        id=row.id,
        profile=row.scep_profile,
        label=row.device,
        status=otp_status(row, now),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.used_by,
    )


def _scep(request: Request[Any, Any, Any]) -> ScepService:
    service: ScepService = request.app.state.scep
    return service


class ScepAdminController(Controller):
    """SCEP administration."""

    path = "/api/v1/admin/scep"
    tags = ["SCEP"]

    @get("/profiles", opt=_ADMIN)
    async def profiles(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """The configured SCEP profiles and their RA certificates (never a password)."""
        scep = _scep(request)
        items = []
        for name, endpoint in scep.endpoints.items():
            ra = endpoint.ra.certificate
            der = ra.public_bytes(serialization.Encoding.DER)
            items.append(
                {
                    "name": name,
                    "path": f"/scep/{name}" if name else "/scep",
                    "mtls_path": (f"/scep-mtls/{name}" if name else "/scep-mtls")
                    if endpoint.settings.mtls_enabled
                    else None,
                    "profile_id": endpoint.settings.profile_id,
                    "intune_enabled": endpoint.settings.intune.enabled,
                    "ra_subject": ra.subject.rfc4514_string(),
                    "ra_not_after": ra.not_valid_after_utc.isoformat(),
                    "ra_sha256": hashlib.sha256(der).hexdigest(),
                }
            )
        return {"enabled": scep.settings.enabled, "data": items}

    @post("/challenges", opt=_ADMIN, status_code=201)
    async def create_challenge(
        self,
        request: Request[Any, Any, Any],
        session: SessionDep,
        actor: ActorDep,
        data: JSONBody[ChallengeIn],
    ) -> ChallengeCreated:
        """Mint a single-use challenge password; it is in this response only."""
        scep = _scep(request)
        scep.endpoint(data.profile, mtls=False)
        if data.expires_in_seconds > scep.settings.otp_max_ttl_seconds:
            raise BadRequest(
                f"expires_in_seconds may be at most {scep.settings.otp_max_ttl_seconds} "
                "(CERTCTL_SCEP_OTP_MAX_TTL)"
            )
        row, secret = await mint_otp(
            session, data.profile, data.expires_in_seconds, data.label, actor.name
        )
        record(
            session,
            actor,
            "scep.challenge.create",
            resource_type="scep_challenge",
            resource_id=row.id,
            details={
                "profile": data.profile,
                "label": data.label,
                "expires_at": str(row.expires_at),
            },
        )
        await session.commit()
        return ChallengeCreated(
            id=row.id,
            challenge=secret,
            profile=row.scep_profile,
            label=row.device,
            expires_at=row.expires_at,
        )

    @get("/challenges", opt=_ADMIN)
    async def list_challenges(
        self, session: SessionDep, profile: FromQuery[str | None] = None
    ) -> dict[str, list[ChallengeOut]]:
        """One-time challenges (never the password), newest first."""
        query = select(ScepChallenge).where(ScepChallenge.kind == "otp")
        if profile is not None:
            query = query.where(ScepChallenge.scep_profile == profile)
        rows = await session.scalars(query.order_by(ScepChallenge.created_at.desc()).limit(500))
        now = utcnow()
        return {"data": [_out(row, now) for row in rows]}

    @delete("/challenges/{challenge_id:str}", opt=_ADMIN, status_code=204)
    async def revoke_challenge(
        self, session: SessionDep, actor: ActorDep, challenge_id: FromPath[str]
    ) -> None:
        """Withdraw an unused challenge: it expires now."""
        row = await session.get(ScepChallenge, challenge_id)
        if row is None or row.kind != "otp":
            raise NotFound(f"no SCEP challenge {challenge_id!r}")
        if row.used_at is None:
            row.expires_at = min(row.expires_at, utcnow())
        record(
            session,
            actor,
            "scep.challenge.revoke",
            resource_type="scep_challenge",
            resource_id=row.id,
            details={"profile": row.scep_profile},
        )
        await session.commit()

    @get("/intune/stats", opt=_ADMIN)
    async def intune_stats(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Per Intune profile: the trust bundle and this replica's challenge counters."""
        return {"profiles": _scep(request).intune.describe()}

    @post("/intune/reload-trust", opt=_ADMIN, status_code=200)
    async def reload_trust(
        self, request: Request[Any, Any, Any], session: SessionDep, actor: ActorDep
    ) -> dict[str, Any]:
        """Re-read every Intune connector bundle; one that fails to load keeps the old one."""
        report = _scep(request).intune.reload()
        record(
            session,
            actor,
            "scep.intune.reload_trust",
            resource_type="scep",
            resource_id="intune",
            details={"profiles": report},
        )
        await session.commit()
        return {"profiles": report}
