"""An SSO provider declared in a file (``CERTCTL_OIDC_PROVIDER_FILE``), created at start.

Without it, the first admin by group could never happen: creating a provider needs
``auth.oidc.create``, which only an admin holds, and once an admin exists the group bootstrap
is off. The file is the provider's API body (``{"name", "type", "config"}``, client secret
included, so keep it 0600 or mount it as a secret). It is read at every start and creates the
provider only when none of that name exists; from then on the API is the authority.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import select

from certctl.db.models import ConnectorInstance
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.connectors.schemas import ConnectorCreate
from certctl.domain.sso.providers import FAMILY, is_sso_kind, sso_instance
from certctl.errors import CertctlError, Conflict
from certctl.settings import SettingsError
from certctl_sdk import ConnectorError
from certctl_sdk.auth import ProviderRefused

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["seed_provider"]

_log = logging.getLogger("certctl.sso")
_VAR = "CERTCTL_OIDC_PROVIDER_FILE"


def _read(path: str) -> ConnectorCreate:
    try:
        return msgspec.convert(json.loads(Path(path).read_text()), ConnectorCreate)
    except (OSError, ValueError, msgspec.ValidationError) as exc:
        raise SettingsError(f"{_VAR}: {type(exc).__name__}: {exc}") from None


async def _existing(runtime: Runtime, name: str) -> str | None:
    async with runtime.sessions() as db:
        return await db.scalar(
            select(ConnectorInstance.id).where(
                ConnectorInstance.family == FAMILY, ConnectorInstance.name == name
            )
        )


async def seed_provider(runtime: Runtime) -> str | None:
    """Create the declared provider unless it exists; its id (None without the setting)."""
    path = runtime.settings.oidc_provider_file
    if not path:
        return None
    body = _read(path)
    if not is_sso_kind(runtime, body.type):
        raise SettingsError(f"{_VAR}: {body.type!r} is not an installed SSO provider kind")
    existing = await _existing(runtime, body.name)
    if existing is not None:
        return existing
    async with runtime.sessions() as db:
        try:
            row = await runtime.connectors.create(db, FAMILY, body)
        except Conflict:
            return await _existing(runtime, body.name)  # another replica created it first
        except (CertctlError, ConnectorError) as exc:
            raise SettingsError(f"{_VAR}: {getattr(exc, 'detail', None) or exc}") from None
        try:
            await sso_instance(runtime, row).refresh_keys()
        except ProviderRefused as exc:
            raise SettingsError(f"{_VAR}: {exc.message}") from None
        except ConnectorError as exc:
            # Logins load (and check) discovery before they start, so this can wait.
            _log.warning("SSO provider %s: discovery not checked at start: %s", body.name, exc)
        record(
            db,
            Actor.system("bootstrap"),
            "auth.oidc.provider.create",
            resource_type="sso_provider",
            resource_id=row.id,
            category="auth",
            details={"type": row.kind, "name": row.name, "source": _VAR},
        )
        await db.commit()
    _log.info("SSO provider %s (%s) created from %s", row.name, row.id, _VAR)
    return row.id
