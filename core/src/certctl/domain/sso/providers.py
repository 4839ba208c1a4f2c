"""SSO providers are connector instances of family ``auth`` whose class is an SsoProvider.

The connector service validates their typed configuration and encrypts the client secret at
rest (context ``connector:<id>:config``), exactly as for issuers and notifiers; this module
adds what is particular to sign-in: the discovery check before a provider is saved, lookups
of enabled providers, and the mapping of IdP failures to HTTP answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.models import ConnectorInstance
from certctl.domain.sso.schemas import LoginOption
from certctl.errors import BadRequest, CertctlError, NotFound, ServiceUnavailable
from certctl.plugins.registry import UnknownConnectorKind
from certctl_sdk import ConnectorError, RejectedError, TransientError
from certctl_sdk.auth import SsoProvider

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "FAMILY",
    "BadGateway",
    "enabled_providers",
    "idp_errors",
    "is_sso_kind",
    "login_options",
    "login_url",
    "provider_row",
    "sso_instance",
]

FAMILY = "auth"


class BadGateway(CertctlError):
    """The identity provider cannot be used (refused discovery, wrong client secret)."""

    status = 502
    title = "Bad Gateway"


def is_sso_kind(runtime: Runtime, kind: str) -> bool:
    """Is ``kind`` an installed SSO provider (not some other auth provider)?"""
    try:
        return issubclass(runtime.host.registry.get(FAMILY, kind).cls, SsoProvider)
    except UnknownConnectorKind:
        return False


def login_url(provider_id: str) -> str:
    """Where a browser starts signing in with this provider."""
    return f"/auth/oidc/login?provider={quote(provider_id, safe='')}"


async def provider_row(
    runtime: Runtime, session: AsyncSession, provider_id: str, *, enabled_only: bool = False
) -> ConnectorInstance:
    """The provider's row; NotFound when it does not exist, is not SSO or (optionally) is off."""
    row = await session.get(ConnectorInstance, provider_id)
    if row is None or row.family != FAMILY or not is_sso_kind(runtime, row.kind):
        raise NotFound(f"SSO provider {provider_id!r} not found")
    if enabled_only and not row.enabled:
        raise NotFound(f"SSO provider {provider_id!r} is disabled")
    return row


async def enabled_providers(runtime: Runtime, session: AsyncSession) -> list[ConnectorInstance]:
    """Every enabled SSO provider, by name."""
    rows = await session.scalars(
        select(ConnectorInstance)
        .where(ConnectorInstance.family == FAMILY, ConnectorInstance.enabled.is_(True))
        .order_by(ConnectorInstance.name)
    )
    return [row for row in rows if is_sso_kind(runtime, row.kind)]


async def login_options(runtime: Runtime, session: AsyncSession) -> list[LoginOption]:
    """The enabled providers as ``GET /api/v1/auth/info`` lists them."""
    return [
        LoginOption(id=row.id, name=row.name, type=row.kind, login_url=login_url(row.id))
        for row in await enabled_providers(runtime, session)
    ]


def sso_instance(runtime: Runtime, row: ConnectorInstance) -> SsoProvider[Any]:
    """The live provider object of a row (cached by the connector service, keys included)."""
    instance = runtime.connectors.instance(row)
    assert isinstance(instance, SsoProvider)
    return instance


@contextmanager
def idp_errors(action: str) -> Iterator[None]:
    """Map what an IdP interaction raised: 503 transient, 400 a refused token, 502 the rest."""
    try:
        yield
    except TransientError as exc:
        raise ServiceUnavailable(f"{action}: {exc.message}") from None
    except RejectedError as exc:
        raise BadRequest(f"{action}: {exc.message}") from None
    except ConnectorError as exc:
        raise BadGateway(f"{action}: {exc.message}") from None
