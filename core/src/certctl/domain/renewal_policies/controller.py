"""``/api/v1/renewal-policies``: renewal timing and expiry-alert routing."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, select

from certctl.db.models import CertificateProfile, ManagedCertificate, RenewalPolicy
from certctl.domain.audit.service import record
from certctl.domain.renewal_policies.schemas import (
    RenewalPolicyIn,
    RenewalPolicyOut,
    RenewalPolicyUpdate,
)
from certctl.domain.renewal_policies.service import apply_update, build_policy, reschedule, to_out
from certctl.errors import Conflict, NotFound
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["RenewalPolicyController"]


async def _get(session: SessionDep, policy_id: str) -> RenewalPolicy:
    row = await session.get(RenewalPolicy, policy_id)
    if row is None:
        raise NotFound(f"renewal policy {policy_id!r} not found")
    return row


class RenewalPolicyController(Controller):
    """Renewal policies."""

    path = "/api/v1/renewal-policies"
    tags = ["RenewalPolicies"]

    @get("/", opt={"permission": "policy.read"})
    async def list_policies(
        self, session: SessionDep, page: FromQuery[int] = 1, per_page: FromQuery[int] = 50
    ) -> Page[RenewalPolicyOut]:
        """All renewal policies by name."""
        offset, limit = page_window(page, per_page)
        total = await session.scalar(select(func.count()).select_from(RenewalPolicy))
        rows = await session.scalars(
            select(RenewalPolicy).order_by(RenewalPolicy.name).offset(offset).limit(limit)
        )
        return Page(
            data=[to_out(r) for r in rows], total=int(total or 0), page=page, per_page=per_page
        )

    @post("/", opt={"permission": "policy.edit"})
    async def create_policy(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[RenewalPolicyIn]
    ) -> RenewalPolicyOut:
        """Create a policy; its id is ``rp-<slug of the name>``."""
        row = await build_policy(session, data)
        session.add(row)
        record(
            session,
            actor,
            "renewal_policy.create",
            resource_type="renewal_policy",
            resource_id=row.id,
            details={"name": row.name},
        )
        await session.commit()
        return to_out(row)

    @get("/{policy_id:str}", opt={"permission": "policy.read"})
    async def get_policy(self, session: SessionDep, policy_id: FromPath[str]) -> RenewalPolicyOut:
        """One policy."""
        return to_out(await _get(session, policy_id))

    @put("/{policy_id:str}", opt={"permission": "policy.edit"})
    async def update_policy(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        policy_id: FromPath[str],
        data: JSONBody[RenewalPolicyUpdate],
    ) -> RenewalPolicyOut:
        """Change a policy; the renewal times of the certificates it governs follow at once."""
        row = await _get(session, policy_id)
        changed = await apply_update(session, row, data)
        await session.flush()
        rescheduled = await reschedule(
            session, row.id, default_jitter_percent=runtime.settings.renewal_jitter_percent
        )
        record(
            session,
            actor,
            "renewal_policy.update",
            resource_type="renewal_policy",
            resource_id=row.id,
            details={"fields": changed, "rescheduled_certificates": rescheduled},
        )
        await session.commit()
        return to_out(row)

    @delete("/{policy_id:str}", opt={"permission": "policy.delete"})
    async def delete_policy(
        self, session: SessionDep, actor: ActorDep, policy_id: FromPath[str]
    ) -> None:
        """Delete a policy no certificate or profile uses."""
        row = await _get(session, policy_id)
        cert = await session.scalar(
            select(ManagedCertificate.id)
            .where(ManagedCertificate.renewal_policy_id == row.id)
            .limit(1)
        )
        if cert:
            raise Conflict(f"renewal policy {row.id} is used by certificate {cert}")
        profile = await session.scalar(
            select(CertificateProfile.id)
            .where(CertificateProfile.renewal_policy_id == row.id)
            .limit(1)
        )
        if profile:
            raise Conflict(f"renewal policy {row.id} is used by profile {profile}")
        await session.delete(row)
        record(
            session,
            actor,
            "renewal_policy.delete",
            resource_type="renewal_policy",
            resource_id=row.id,
            details={"name": row.name},
        )
        await session.commit()
