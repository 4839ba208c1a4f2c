"""``/api/v1/profiles``: certificate profiles (issuance policy)."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from certctl.db.base import utcnow
from certctl.db.models import CertificateProfile, ManagedCertificate
from certctl.domain.audit.service import record
from certctl.domain.profiles.schemas import KeyAlgorithmRule, ProfileIn, ProfileOut, ProfileUpdate
from certctl.domain.profiles.service import create_profile, validate_profile_fields
from certctl.domain.renewal_policies.service import check_policy_ids
from certctl.errors import Conflict, NotFound
from certctl.lib.deps import ActorDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["ProfileController"]


def _out(row: CertificateProfile) -> ProfileOut:
    return ProfileOut(
        id=row.id,
        name=row.name,
        description=row.description,
        allowed_key_algorithms=msgspec.convert(row.allowed_key_algorithms, list[KeyAlgorithmRule]),
        max_ttl_seconds=row.max_ttl_seconds,
        allowed_san_patterns=list(row.allowed_san_patterns),
        allowed_ekus=list(row.allowed_ekus),
        must_staple=row.must_staple,
        renew_before_days=row.renew_before_days,
        renewal_policy_id=row.renewal_policy_id,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ProfileController(Controller):
    """Certificate profiles."""

    path = "/api/v1/profiles"
    tags = ["Profiles"]

    @get("/", opt={"permission": "profile.read"})
    async def list_profiles(
        self, session: SessionDep, page: FromQuery[int] = 1, per_page: FromQuery[int] = 50
    ) -> Page[ProfileOut]:
        """All profiles by name."""
        offset, limit = page_window(page, per_page)
        total = await session.scalar(select(func.count()).select_from(CertificateProfile))
        rows = await session.scalars(
            select(CertificateProfile).order_by(CertificateProfile.name).offset(offset).limit(limit)
        )
        return Page(
            data=[_out(r) for r in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @post("/", opt={"permission": "profile.edit"})
    async def create_profile(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[ProfileIn]
    ) -> ProfileOut:
        """Create a profile."""
        row = await create_profile(session, data, actor)
        await session.commit()
        return _out(row)

    @get("/{profile_id:str}", opt={"permission": "profile.read"})
    async def get_profile(self, session: SessionDep, profile_id: FromPath[str]) -> ProfileOut:
        """One profile."""
        row = await session.get(CertificateProfile, profile_id)
        if row is None:
            raise NotFound(f"profile {profile_id!r} not found")
        return _out(row)

    @put("/{profile_id:str}", opt={"permission": "profile.edit"})
    async def update_profile(
        self,
        session: SessionDep,
        actor: ActorDep,
        profile_id: FromPath[str],
        data: JSONBody[ProfileUpdate],
    ) -> ProfileOut:
        """Change a profile; applies to future issuances and renewals."""
        row = await session.get(CertificateProfile, profile_id)
        if row is None:
            raise NotFound(f"profile {profile_id!r} not found")
        validate_profile_fields(
            data.allowed_key_algorithms, data.allowed_ekus, data.allowed_san_patterns
        )
        changes = {
            f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not None
        }
        if "renewal_policy_id" in changes:
            await check_policy_ids(session, {data.renewal_policy_id or ""})
            changes["renewal_policy_id"] = data.renewal_policy_id or None
        for field, value in changes.items():
            setattr(
                row,
                field,
                msgspec.to_builtins(value) if field == "allowed_key_algorithms" else value,
            )
        row.updated_at = utcnow()
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"a profile named {data.name!r} already exists") from None
        record(
            session,
            actor,
            "profile.update",
            resource_type="profile",
            resource_id=row.id,
            details={"fields": sorted(changes)},
        )
        await session.commit()
        return _out(row)

    @delete("/{profile_id:str}", opt={"permission": "profile.delete"})
    async def delete_profile(
        self, session: SessionDep, actor: ActorDep, profile_id: FromPath[str]
    ) -> None:
        """Delete a profile no certificate uses."""
        row = await session.get(CertificateProfile, profile_id)
        if row is None:
            raise NotFound(f"profile {profile_id!r} not found")
        used = await session.scalar(
            select(ManagedCertificate.id).where(ManagedCertificate.profile_id == row.id).limit(1)
        )
        if used:
            raise Conflict(f"profile {row.id} is used by certificate {used}")
        await session.delete(row)
        record(
            session,
            actor,
            "profile.delete",
            resource_type="profile",
            resource_id=row.id,
            details={"name": row.name},
        )
        await session.commit()
