"""REST endpoints for issuers, targets and notifiers, and the kinds each family offers.

The three families share one implementation; only paths and permission names differ, which
keeps their behaviour (validation, masking, testing, audit) identical by construction.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import CertificateTarget, ManagedCertificate
from certctl.domain.audit.service import record
from certctl.domain.connectors.schemas import (
    CheckOut,
    ConnectorCreate,
    ConnectorKindOut,
    ConnectorOut,
    ConnectorUpdate,
)
from certctl.errors import Conflict
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep
from certctl.lib.pagination import Page, page_window
from certctl_sdk import CheckResult, Connector
from certctl_sdk.config import config_schema
from certctl_sdk.errors import ConnectorError

__all__ = ["connector_controllers"]


def _kinds(runtime: RuntimeDep, family: str) -> list[ConnectorKindOut]:
    return [
        ConnectorKindOut(
            type=spec.kind,
            display_name=spec.cls.display_name,
            description=spec.cls.description,
            capabilities=sorted(str(c) for c in getattr(spec.cls, "capabilities", ())),
            config_schema=config_schema(spec.cls.Config),
            distribution=spec.distribution,
            version=spec.version,
        )
        for spec in runtime.host.registry.kinds(family)
    ]


def _make(
    family: str, path: str, kinds_path: str, read: str, edit: str, remove: str
) -> list[type[Controller]]:
    resource = family
    # A grant scoped to one issuer (or target) opens that instance's own routes.
    scoped: dict[str, object] = (
        {"scope": (family, "instance_id")} if family in ("issuer", "target") else {}
    )

    class KindsController(Controller):
        tags = ["Connectors"]

        @get(
            kinds_path,
            opt={"permission": read},
            operation_id=f"list_{family}_kinds",
            sync_to_thread=False,
        )
        def list_kinds(self, runtime: RuntimeDep) -> list[ConnectorKindOut]:
            """Each kind with its configuration JSON Schema (drives forms and validation)."""
            return _kinds(runtime, family)

    class InstancesController(Controller):
        tags = ["Connectors"]

        @get(path, opt={"permission": read}, operation_id=f"list_{family}s")
        async def list_instances(
            self,
            runtime: RuntimeDep,
            session: SessionDep,
            page: FromQuery[int] = 1,
            per_page: FromQuery[int] = 50,
        ) -> Page[ConnectorOut]:
            """Configured instances, secrets masked."""
            offset, limit = page_window(page, per_page)
            rows, total = await runtime.connectors.list_rows(
                session, family, offset=offset, limit=limit
            )
            return Page(
                data=[runtime.connectors.render(r) for r in rows],
                total=total,
                page=page,
                per_page=per_page,
            )

        @post(path, opt={"permission": edit}, operation_id=f"create_{family}")
        async def create_instance(
            self,
            runtime: RuntimeDep,
            session: SessionDep,
            actor: ActorDep,
            data: JSONBody[ConnectorCreate],
        ) -> ConnectorOut:
            """Validate the configuration against the kind's schema and store it encrypted."""
            row = await runtime.connectors.create(session, family, data)
            record(
                session,
                actor,
                f"{resource}.create",
                resource_type=resource,
                resource_id=row.id,
                details={"type": row.kind, "name": row.name},
            )
            await session.commit()
            return runtime.connectors.render(row)

        @get(
            f"{path}/{{instance_id:str}}",
            opt={"permission": read, **scoped},
            operation_id=f"get_{family}",
        )
        async def get_instance(
            self, runtime: RuntimeDep, session: SessionDep, instance_id: FromPath[str]
        ) -> ConnectorOut:
            """One instance, secrets masked."""
            return runtime.connectors.render(
                await runtime.connectors.get_row(session, family, instance_id)
            )

        @put(
            f"{path}/{{instance_id:str}}",
            opt={"permission": edit, **scoped},
            operation_id=f"update_{family}",
        )
        async def update_instance(
            self,
            runtime: RuntimeDep,
            session: SessionDep,
            actor: ActorDep,
            instance_id: FromPath[str],
            data: JSONBody[ConnectorUpdate],
        ) -> ConnectorOut:
            """Change name, configuration or enabled flag; send a secret back masked to keep it."""
            row = await runtime.connectors.get_row(session, family, instance_id)
            await runtime.connectors.update(session, row, data)
            fields = [f for f in ("name", "config", "enabled") if getattr(data, f) is not None]
            record(
                session,
                actor,
                f"{resource}.update",
                resource_type=resource,
                resource_id=row.id,
                details={"fields": fields},
            )
            await session.commit()
            return runtime.connectors.render(row)

        @delete(
            f"{path}/{{instance_id:str}}",
            opt={"permission": remove, **scoped},
            operation_id=f"delete_{family}",
        )
        async def delete_instance(
            self,
            runtime: RuntimeDep,
            session: SessionDep,
            actor: ActorDep,
            instance_id: FromPath[str],
        ) -> None:
            """Delete an instance that nothing uses."""
            row = await runtime.connectors.get_row(session, family, instance_id)
            if family == "issuer":
                in_use = await session.scalar(
                    select(ManagedCertificate.id)
                    .where(ManagedCertificate.issuer_id == row.id)
                    .limit(1)
                )
            elif family == "target":
                in_use = await session.scalar(
                    select(CertificateTarget.certificate_id)
                    .where(CertificateTarget.target_id == row.id)
                    .limit(1)
                )
            else:
                in_use = None
            if in_use:
                raise Conflict(f"{family} {row.id} is used by certificate {in_use}")
            await session.delete(row)
            record(
                session,
                actor,
                f"{resource}.delete",
                resource_type=resource,
                resource_id=row.id,
                details={"name": row.name},
            )
            await session.commit()

        @post(
            f"{path}/{{instance_id:str}}/test",
            opt={"permission": edit, **scoped},
            operation_id=f"test_{family}",
            status_code=200,
        )
        async def test_instance(
            self,
            runtime: RuntimeDep,
            session: SessionDep,
            actor: ActorDep,
            instance_id: FromPath[str],
        ) -> CheckOut:
            """Run the connector's own check against the real system; changes nothing there."""
            row = await runtime.connectors.get_row(session, family, instance_id)
            try:
                connector: Connector[Any] = runtime.connectors.instance(row)
                result = await connector.check()
            except ConnectorError as exc:
                result = CheckResult(ok=False, message=exc.message)
            row.last_tested_at = utcnow()
            row.test_status = "ok" if result.ok else "failed"
            row.test_message = result.message
            record(
                session,
                actor,
                f"{resource}.test",
                resource_type=resource,
                resource_id=row.id,
                outcome="success" if result.ok else "failure",
                details={"message": result.message},
            )
            await session.commit()
            return CheckOut(ok=result.ok, message=result.message, details=dict(result.details))

    return [KindsController, InstancesController]


def connector_controllers() -> list[type[Controller]]:
    """Controllers for every connector family exposed over REST."""
    return [
        *_make(
            "issuer",
            "/api/v1/issuers",
            "/api/v1/issuer-kinds",
            "issuer.read",
            "issuer.edit",
            "issuer.delete",
        ),
        *_make(
            "target",
            "/api/v1/targets",
            "/api/v1/target-kinds",
            "target.read",
            "target.edit",
            "target.delete",
        ),
        *_make(
            "notifier",
            "/api/v1/notifiers",
            "/api/v1/notifier-kinds",
            "notification.read",
            "notification.edit",
            "notification.edit",
        ),
    ]
