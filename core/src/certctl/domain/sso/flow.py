"""The browser sign-in: start at the IdP, come back, become a session.

Order of the callback, each step refusing before the next runs: consume the pre-login row
(once, committed); check the browser binding; check the IdP's answer (RFC 9207 ``iss``, error);
redeem the code with the PKCE verifier and validate the ID token (the provider's rules, shared
by every provider through the SDK); then, in one transaction, upsert the user, run the
first-admin bootstrap, require at least one role (fail closed) and start the session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from litestar.connection import ASGIConnection

from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.rbac import load_grants
from certctl.domain.sessions.service import (
    IssuedSession,
    group_actor_ids,
    record_session_started,
    start_session,
)
from certctl.domain.sso.bootstrap import bootstrap_admin_by_group
from certctl.domain.sso.pending import (
    PENDING_COOKIE,
    check_binding,
    consume_pending,
    create_pending,
)
from certctl.domain.sso.providers import (
    enabled_providers,
    idp_errors,
    provider_row,
    sso_instance,
)
from certctl.domain.users.service import upsert_federated_user
from certctl.errors import BadRequest, CertctlError, Forbidden

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["Callback", "begin_login", "finish_login"]

Connection = ASGIConnection[Any, Any, Any, Any]


def _client_ip(connection: Connection) -> str | None:
    return connection.client.host if connection.client else None


class Callback(NamedTuple):
    """A finished sign-in."""

    session: IssuedSession
    redirect_after: str
    user_id: str


async def begin_login(
    runtime: Runtime, connection: Connection, *, provider_id: str | None, redirect_after: str
) -> tuple[str, str]:
    """Create the pre-login row; return (the IdP's authorization URL, the binding token)."""
    async with runtime.sessions() as db:
        if provider_id:
            row = await provider_row(runtime, db, provider_id, enabled_only=True)
        else:
            rows = await enabled_providers(runtime, db)
            if len(rows) != 1:
                raise BadRequest(
                    "name the provider: /auth/oidc/login?provider=<id> "
                    "(GET /api/v1/auth/info lists them)"
                )
            row = rows[0]
    provider = sso_instance(runtime, row)
    with idp_errors("the identity provider cannot be used"):
        await provider.load_metadata()  # no database connection held while the IdP answers
    async with runtime.sessions() as db:
        login = create_pending(
            runtime,
            db,
            provider_id=row.id,
            redirect_after=redirect_after,
            user_agent=connection.headers.get("user-agent"),
            client_ip=_client_ip(connection),
        )
        await db.commit()
    with idp_errors("the identity provider cannot be used"):
        url = await provider.authorization_url(
            state=login.state, nonce=login.nonce, code_verifier=login.verifier
        )
    return url, login.binding


async def _refused(
    runtime: Runtime, connection: Connection, provider_id: str, reason: str, **details: Any
) -> None:
    """An audit row for a refused sign-in, in its own transaction (the login's rolls back)."""
    async with runtime.sessions() as db:
        record(
            db,
            Actor.anonymous(_client_ip(connection) or "unknown"),
            "auth.oidc.login",
            resource_type="sso_provider",
            resource_id=provider_id,
            outcome="denied",
            category="auth",
            details={"reason": reason[:300], **details},
        )
        await db.commit()


async def finish_login(
    runtime: Runtime,
    connection: Connection,
    *,
    state: str | None,
    code: str | None,
    iss: str | None,
    error: str | None,
) -> Callback:
    """Run the callback; any refusal is a 4xx/5xx problem and leaves no session behind."""
    if not state:
        raise BadRequest("the callback carries no state")
    consumed = await consume_pending(runtime, state)
    if consumed is None:
        raise BadRequest("unknown, expired or already used login state; start the login again")
    settings = runtime.settings
    try:
        check_binding(
            consumed,
            binding=connection.cookies.get(PENDING_COOKIE),
            user_agent=connection.headers.get("user-agent"),
            client_ip=_client_ip(connection),
            bind_user_agent=settings.oidc_prelogin_bind_user_agent,
            bind_ip=settings.oidc_prelogin_bind_ip,
        )
        if error:
            shown = "".join(c for c in error[:64] if c.isalnum() or c in "_-")
            raise BadRequest(f"the identity provider refused the login ({shown})")
        if not code:
            raise BadRequest("the callback carries no code")
        async with runtime.sessions() as db:
            row = await provider_row(runtime, db, consumed.provider_id, enabled_only=True)
        provider = sso_instance(runtime, row)
        with idp_errors("sign-in refused"):
            await provider.load_metadata()
            provider.check_callback_issuer(iss)
            identity = await provider.complete_login(
                code=code, code_verifier=consumed.verifier, nonce=consumed.nonce
            )
    except CertctlError as exc:
        await _refused(runtime, connection, consumed.provider_id, exc.detail)
        raise
    try:
        async with runtime.sessions() as db:
            user = await upsert_federated_user(
                db,
                provider_id=row.id,
                subject=identity.subject,
                email=identity.email,
                display_name=identity.display_name,
                groups=identity.groups,
            )
            bootstrapped = await bootstrap_admin_by_group(
                db,
                settings,
                user_id=user.id,
                provider_id=row.id,
                provider_name=row.name,
                groups=identity.groups,
            )
            holders = group_actor_ids(row.id, identity.groups)
            grants, _ = await load_grants(db, "User", user.id, holders, datetime.now(UTC))
            if not grants.roles:
                raise Forbidden(
                    "no certctl role is mapped to this user or their groups; an administrator "
                    "maps groups with POST /api/v1/auth/oidc/group-mappings"
                )
            issued = await start_session(
                runtime,
                db,
                user=user,
                request=connection,
                groups=identity.groups,
                auth_method="sso",
                provider_id=row.id,
                idp_sid=identity.sid,
            )
            record_session_started(db, user, issued)
            await db.commit()
    except CertctlError as exc:
        # Audited after the login's transaction rolled back (SQLite has one writer at a time).
        await _refused(runtime, connection, row.id, exc.detail, user=identity.subject)
        raise
    if bootstrapped:
        runtime.auth_generation.invalidate()
    return Callback(session=issued, redirect_after=consumed.redirect_after, user_id=user.id)
