"""``/api/v1/policies``: compliance policy rules and the violations they report."""

from __future__ import annotations

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import func, select

from certctl.db.models import PolicyRule
from certctl.domain.compliance import service
from certctl.domain.compliance.rules import RULE_CONFIGS
from certctl.domain.compliance.schemas import PolicyIn, PolicyOut, PolicyUpdate, ViolationOut
from certctl.errors import BadRequest
from certctl.lib.deps import ActorDep, SessionDep
from certctl.lib.pagination import Page, page_window

__all__ = ["PolicyController"]


class PolicyController(Controller):
    """Compliance policy rules."""

    path = "/api/v1/policies"
    tags = ["Policies"]

    @get("/", opt={"permission": "policy.read"})
    async def list_policies(
        self,
        session: SessionDep,
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
        type: FromQuery[str | None] = None,
        enabled: FromQuery[bool | None] = None,
    ) -> Page[PolicyOut]:
        """Rules by name, filtered by type or enabled."""
        offset, limit = page_window(page, per_page)
        query = select(PolicyRule)
        if type is not None:
            if type not in RULE_CONFIGS:
                raise BadRequest(f"type must be one of {', '.join(RULE_CONFIGS)}")
            query = query.where(PolicyRule.type == type)
        if enabled is not None:
            query = query.where(PolicyRule.enabled.is_(enabled))
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(query.order_by(PolicyRule.name).offset(offset).limit(limit))
        return Page(
            data=[service.rule_out(r) for r in rows],
            total=int(total or 0),
            page=page,
            per_page=per_page,
        )

    @post("/", opt={"permission": "policy.edit"})
    async def create_policy(
        self, session: SessionDep, actor: ActorDep, data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        """Create a rule; a config that does not fit its type is a 400."""
        row = await service.create_rule(session, data, actor)
        await session.commit()
        return service.rule_out(row)

    @get("/{policy_id:str}", opt={"permission": "policy.read"})
    async def get_policy(self, session: SessionDep, policy_id: FromPath[str]) -> PolicyOut:
        """One rule."""
        return service.rule_out(await service.get_rule(session, policy_id))

    @put("/{policy_id:str}", opt={"permission": "policy.edit"})
    async def update_policy(
        self,
        session: SessionDep,
        actor: ActorDep,
        policy_id: FromPath[str],
        data: JSONBody[PolicyUpdate],
    ) -> PolicyOut:
        """Change a rule; disabling it clears its violations."""
        row = await service.get_rule(session, policy_id)
        await service.update_rule(session, row, data, actor)
        await session.commit()
        return service.rule_out(row)

    @delete("/{policy_id:str}", opt={"permission": "policy.delete"})
    async def delete_policy(
        self, session: SessionDep, actor: ActorDep, policy_id: FromPath[str]
    ) -> None:
        """Delete a rule and its violations."""
        row = await service.get_rule(session, policy_id)
        await service.delete_rule(session, row, actor)
        await session.commit()

    @get("/{policy_id:str}/violations", opt={"permission": "policy.read"})
    async def list_policy_violations(
        self,
        session: SessionDep,
        policy_id: FromPath[str],
        page: FromQuery[int] = 1,
        per_page: FromQuery[int] = 50,
    ) -> Page[ViolationOut]:
        """Certificates currently breaking the rule, oldest violation first."""
        offset, limit = page_window(page, per_page)
        await service.get_rule(session, policy_id)
        data, total = await service.list_violations(
            session, rule_id=policy_id, offset=offset, limit=limit
        )
        return Page(data=data, total=total, page=page, per_page=per_page)
