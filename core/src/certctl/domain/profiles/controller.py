"""``/api/v1/profiles``: certificate profiles (issuance policy).

Edits and deletions of an approval-tier profile (``requires_approval``), and edits that switch
approval on, are not applied: they become an approval request and the answer is ``202`` with
it. The change is applied when a second person approves.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, select

from certctl.db.models import CertificateProfile
from certctl.domain.approvals import service as approvals
from certctl.domain.approvals.events import publish_requested
from certctl.domain.profiles.schemas import ProfileAccepted, ProfileIn, ProfileOut, ProfileUpdate
from certctl.domain.profiles.service import (
    apply_update,
    create_profile,
    delete_profile,
    edit_needs_approval,
    profile_out,
)
from certctl.errors import NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["ProfileController"]

_SCOPE = ("profile", "profile_id")
"""A grant scoped to one profile opens that profile's own routes."""


async def _get(session: Any, profile_id: str) -> CertificateProfile:
    row = await session.get(CertificateProfile, profile_id)
    if row is None:
        raise NotFound(f"profile {profile_id!r} not found")
    assert isinstance(row, CertificateProfile)
    return row


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
            data=[profile_out(r) for r in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @post("/", opt={"permission": "profile.edit"})
    async def create_profile(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[ProfileIn]
    ) -> ProfileOut:
        """Create a profile."""
        row = await create_profile(session, data, actor)
        await session.commit()
        return profile_out(row)

    @get("/{profile_id:str}", opt={"permission": "profile.read", "scope": _SCOPE})
    async def get_profile(self, session: SessionDep, profile_id: FromPath[str]) -> ProfileOut:
        """One profile."""
        return profile_out(await _get(session, profile_id))

    @put("/{profile_id:str}", opt={"permission": "profile.edit", "scope": _SCOPE})
    async def update_profile(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        profile_id: FromPath[str],
        data: JSONBody[ProfileUpdate],
    ) -> Response[ProfileOut | ProfileAccepted]:
        """Change a profile (200), or ask for approval of the change (202); see the module."""
        row = await _get(session, profile_id)
        if edit_needs_approval(row, data):
            bypass = runtime.settings.approval_bypass
            request = await approvals.open_profile_request(
                session, row, actor, update=data, bypass=bypass
            )
            await session.commit()
            if not bypass:
                await publish_requested(runtime, approval_ids=[request.id])
                return Response(
                    ProfileAccepted(approval=approvals.approval_out(request)), status_code=202
                )
        else:
            await apply_update(session, row, data, actor)
            await session.commit()
        return Response(profile_out(row), status_code=200)

    @delete(
        "/{profile_id:str}",
        opt={"permission": "profile.delete", "scope": _SCOPE},
        status_code=200,
    )
    async def delete_profile(
        self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep, profile_id: FromPath[str]
    ) -> Response[ProfileAccepted | None]:
        """Delete a profile no certificate uses; an approval-tier one needs approval (202)."""
        row = await _get(session, profile_id)
        if edit_needs_approval(row, None):
            bypass = runtime.settings.approval_bypass
            request = await approvals.open_profile_request(
                session, row, actor, update=None, bypass=bypass
            )
            await session.commit()
            if not bypass:
                await publish_requested(runtime, approval_ids=[request.id])
                return Response(
                    ProfileAccepted(approval=approvals.approval_out(request)), status_code=202
                )
            return Response(None, status_code=204)
        await delete_profile(session, row, actor)
        await session.commit()
        return Response(None, status_code=204)
