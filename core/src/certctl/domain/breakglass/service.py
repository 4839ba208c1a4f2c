"""Break-glass sign-in: local passwords for recovering administration when SSO is down.

A break-glass account is a ``users`` row with provider ``breakglass`` (subject = username)
plus a ``breakglass_credentials`` row holding its Argon2id hash. Creating the credential grants
the user one role (``r-admin`` unless another is named) with the creator's no-escalation check,
so only someone holding every permission of that role can mint it. Signing in starts a normal
browser session; the session's permissions are the user's grants.

Lockout counts failures with single UPDATE statements, never read-modify-write, so concurrent
wrong guesses are all counted. Each attempt first *reserves* a guess: one statement that
increments the counter (restarting it when the window has passed) and sets ``locked_until``
when the count reaches the threshold, but only where the account is not locked. A correct
password then resets the counter. So however many guesses arrive at once, at most the
threshold of them are checked against the real hash before the lock holds.

Every attempt — right, wrong, unknown user, locked account — runs exactly one Argon2
verification (against a dummy hash when there is no usable one) and every failure gets the
same 401, so neither time nor answer tells whether an account exists or is locked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.connection import ASGIConnection
from sqlalchemy import case, delete, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import UTCDateTime, new_id, utcnow
from certctl.db.engine import dialect_insert
from certctl.db.models import BreakglassCredential, RoleGrant, User
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.service import add_grant, audit_grant, remove_grant
from certctl.domain.breakglass.hashing import Argon2
from certctl.domain.breakglass.policy import (
    MAX_PASSWORD_LENGTH,
    check_password,
    check_username,
    normalise_username,
)
from certctl.domain.breakglass.schemas import CredentialOut
from certctl.domain.sessions.service import (
    IssuedSession,
    record_session_started,
    revoke_sessions,
    start_session,
    user_actor,
)
from certctl.domain.users.service import BREAKGLASS_PROVIDER, upsert_federated_user
from certctl.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from certctl.lib.ratelimit import Budget, bucket_key
from certctl.lib.ratelimit_http import address_key

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["DEFAULT_ROLE", "BreakglassService", "credential_out"]

_log = logging.getLogger("certctl.breakglass")

DEFAULT_ROLE = "r-admin"
"""What a break-glass account is for: administering certctl while SSO cannot."""
ACTION_LOGIN = "auth.breakglass.login"
_FAILED = "invalid username or password"


def credential_out(row: BreakglassCredential, now: datetime) -> CredentialOut:
    """The wire form of a credential: metadata only, never the hash."""
    return CredentialOut(
        actor_id=row.actor_id,
        username=row.username,
        role_id=row.role_id,
        created_by=row.created_by,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        last_login_at=row.last_login_at,
        failed_attempts=row.failed_attempts,
        locked=row.locked_until is not None and row.locked_until > now,
        locked_until=row.locked_until,
    )


class _Reserved(msgspec.Struct, frozen=True):
    """What reserving a guess found: the account, or why there is none to check."""

    actor_id: str | None
    password_hash: str | None
    failed_attempts: int
    outcome: str
    """``check`` (verify the real hash), ``locked`` or ``unknown``."""


class BreakglassService:
    """The break-glass feature of one process (inactive unless CERTCTL_BREAKGLASS_ENABLED)."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.enabled = settings.breakglass_enabled
        self.argon2 = Argon2(
            memory_kib=settings.breakglass_argon2_memory_kib,
            time_cost=settings.breakglass_argon2_time_cost,
            parallelism=settings.breakglass_argon2_parallelism,
            concurrency=settings.breakglass_hash_concurrency,
        )
        self.threshold = settings.breakglass_lockout_threshold
        self.lock_for = timedelta(seconds=settings.breakglass_lockout_duration_seconds)
        self.reset_after = timedelta(seconds=settings.breakglass_lockout_reset_seconds)
        self.min_password_length = settings.breakglass_min_password_length
        self.login_budget = Budget.per_minute(settings.breakglass_login_per_ip_min)
        self.clock: Callable[[], datetime] = utcnow
        """Wall clock of lockouts (tests move it)."""

    async def start(self) -> None:
        """Announce the feature loudly and make the dummy hash; nothing when disabled."""
        if not self.enabled:
            return
        _log.warning(
            "break-glass sign-in is ENABLED (CERTCTL_BREAKGLASS_ENABLED=true): local passwords "
            "can start admin sessions at POST /auth/breakglass/login; turn it off once SSO works"
        )
        if "breakglass" not in self.runtime.auth_methods:
            self.runtime.auth_methods.append("breakglass")
        await self.argon2.prepare()

    # -- sign-in ---------------------------------------------------------------------------

    async def login(
        self, connection: ASGIConnection[Any, Any, Any, Any], username: str, password: str
    ) -> tuple[User, IssuedSession]:
        """Check the password and start a session, or raise 401 (429 over the address limit)."""
        limits = self.runtime.rate_limits
        address = limits.address(connection)
        await limits.enforce(
            bucket_key("breakglass-login", address_key(address)),
            self.login_budget,
            "the break-glass sign-in limit of this address",
        )
        if len(password) > MAX_PASSWORD_LENGTH:
            raise BadRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters long")
        self.argon2.check_capacity()
        name = normalise_username(username)
        reserved = await self._reserve(name)
        try:
            matched = await self.argon2.verify_or_dummy(reserved.password_hash, password)
        except ServiceUnavailable:
            # Filled up while this attempt was being counted: it is recorded, not checked.
            await self._record_failure(address, name, reserved, "failure", {"reason": "busy"})
            raise
        if matched and reserved.actor_id is not None and reserved.password_hash is not None:
            rehash = self.argon2.needs_rehash(reserved.password_hash)
            return await self._succeed(
                connection,
                reserved.actor_id,
                name,
                await self.argon2.hash(password) if rehash else None,
            )
        await self._fail(address, name, reserved)
        raise Unauthorized(_FAILED)

    async def _reserve(self, name: str) -> _Reserved:
        """Count this guess (one UPDATE) unless the account is locked or does not exist."""
        now = self.clock()
        at = literal(now, UTCDateTime())
        c = BreakglassCredential
        fresh = or_(c.window_started_at.is_(None), c.window_started_at <= now - self.reset_after)
        count = case((fresh, 1), else_=c.failed_attempts + 1)
        async with self.runtime.sessions.begin() as db:
            row = (
                await db.execute(
                    update(c)
                    .where(c.username == name, or_(c.locked_until.is_(None), c.locked_until <= now))
                    .values(
                        failed_attempts=count,
                        window_started_at=case((fresh, at), else_=c.window_started_at),
                        locked_until=case(
                            (count >= self.threshold, literal(now + self.lock_for, UTCDateTime()))
                        ),
                    )
                    .returning(c.actor_id, c.password_hash, c.failed_attempts)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if row is not None:
                return _Reserved(row[0], row[1], int(row[2]), "check")
            locked = await db.scalar(select(c.actor_id).where(c.username == name))
        if locked is not None:
            return _Reserved(locked, None, 0, "locked")
        return _Reserved(None, None, 0, "unknown")

    async def _succeed(
        self,
        connection: ASGIConnection[Any, Any, Any, Any],
        actor_id: str,
        name: str,
        new_hash: str | None,
    ) -> tuple[User, IssuedSession]:
        """Reset the counter, start the session; ``new_hash`` upgrades an outdated hash."""
        values: dict[str, Any] = {
            "failed_attempts": 0,
            "window_started_at": None,
            "locked_until": None,
            "last_login_at": self.clock(),
        }
        if new_hash is not None:
            values["password_hash"] = new_hash
        async with self.runtime.sessions() as db:
            await db.execute(
                update(BreakglassCredential)
                .where(BreakglassCredential.actor_id == actor_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            user = await upsert_federated_user(
                db,
                provider_id=BREAKGLASS_PROVIDER,
                subject=name,
                email=None,
                display_name=name,
                groups=(),
            )
            account = user_actor(user)  # before a rollback expires the row's attributes
            try:
                issued = await start_session(
                    self.runtime,
                    db,
                    user=user,
                    request=connection,
                    groups=(),
                    auth_method="breakglass",
                    provider_id=BREAKGLASS_PROVIDER,
                )
            except Forbidden:
                await db.rollback()
                record(
                    db,
                    account,
                    ACTION_LOGIN,
                    resource_type="breakglass_credential",
                    resource_id=actor_id,
                    outcome="denied",
                    category="auth",
                    details={"reason": "user_deactivated"},
                )
                await db.commit()
                raise
            record_session_started(db, user, issued)
            record(
                db,
                account,
                ACTION_LOGIN,
                resource_type="breakglass_credential",
                resource_id=actor_id,
                category="auth",
                details={"session_id": issued.session_id, "username": name},
            )
            await db.commit()
        _log.warning("break-glass sign-in of %s (%s)", name, user.id)
        return user, issued

    async def _fail(self, address: str, name: str, reserved: _Reserved) -> None:
        """Audit a failed attempt. An unknown username is kept only as a digest: people type
        passwords into the username field, and the audit trail must not collect them."""
        details: dict[str, Any]
        if reserved.actor_id is None:
            outcome, details = "denied", {"reason": "unknown_user"}
        elif reserved.outcome == "locked":
            outcome, details = "locked", {"reason": "locked", "username": name}
        else:
            outcome = "denied"
            details = {
                "reason": "wrong_password",
                "username": name,
                "failed_attempts": reserved.failed_attempts,
                "locked": reserved.failed_attempts >= self.threshold,
            }
        await self._record_failure(address, name, reserved, outcome, details)

    async def _record_failure(
        self, address: str, name: str, reserved: _Reserved, outcome: str, details: dict[str, Any]
    ) -> None:
        """One audit row (actor: the client address); unknown usernames only as a digest."""
        if reserved.actor_id is None:
            details.setdefault("username_sha256", hashlib.sha256(name.encode()).hexdigest())
        async with self.runtime.sessions.begin() as db:
            record(
                db,
                Actor.anonymous(address),
                ACTION_LOGIN,
                resource_type="breakglass_credential",
                resource_id=reserved.actor_id or "",
                outcome=outcome,
                category="auth",
                details=details,
            )

    # -- administration --------------------------------------------------------------------

    async def credentials(self, db: AsyncSession) -> list[BreakglassCredential]:
        """Every credential, by username."""
        rows = await db.scalars(
            select(BreakglassCredential).order_by(BreakglassCredential.username)
        )
        return list(rows)

    async def set_password(
        self,
        db: AsyncSession,
        actor: Actor,
        *,
        username: str,
        password: str,
        role_id: str | None,
    ) -> tuple[BreakglassCredential, bool]:
        """Create the account (granting ``role_id``) or replace its password; True if created.

        A new password ends the account's sessions and lifts a lockout. The caller commits,
        then invalidates the auth generation.
        """
        name = check_username(username)
        check_password(password, username=name, min_length=self.min_password_length)
        existing = await db.scalar(
            select(BreakglassCredential).where(BreakglassCredential.username == name)
        )
        now = self.clock()
        if existing is not None:
            if role_id is not None and role_id != existing.role_id:
                raise BadRequest(
                    "the role is granted when the account is created; change it with the "
                    "grants API (/api/v1/auth/grants)"
                )
            existing.password_hash = await self.argon2.hash(password)
            existing.password_changed_at = now
            existing.failed_attempts = 0
            existing.window_started_at = None
            existing.locked_until = None
            ended = await revoke_sessions(db, user_id=existing.actor_id, reason="password changed")
            self._audit(db, actor, "auth.breakglass.password.set", existing, ended_sessions=ended)
            return existing, False
        role = role_id or DEFAULT_ROLE
        user = await self._account_user(db, name)
        try:
            async with db.begin_nested():  # a grant the user already holds is kept as it is
                grant = await add_grant(
                    db, actor, actor_type="User", actor_id=user.id, role_id=role
                )
            audit_grant(db, actor, "auth.role.assign", grant)
        except Conflict:
            pass
        credential = BreakglassCredential(
            actor_id=user.id,
            username=name,
            password_hash=await self.argon2.hash(password),
            failed_attempts=0,
            role_id=role,
            created_by=actor.name,
            created_at=now,
            password_changed_at=now,
        )
        db.add(credential)
        try:
            await db.flush()
        except IntegrityError:
            raise Conflict(f"a break-glass account {name!r} is being created already") from None
        self._audit(db, actor, "auth.breakglass.credential.create", credential)
        return credential, True

    async def _account_user(self, db: AsyncSession, name: str) -> User:
        """The account's user row, made now (or reactivated: a deleted account's old row)."""
        await db.execute(
            dialect_insert(db)(User)
            .values(
                id=new_id("usr"),
                provider_id=BREAKGLASS_PROVIDER,
                subject=name,
                email=None,
                display_name=name,
                groups=[],
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["provider_id", "subject"])
        )
        user = await db.scalar(
            select(User)
            .where(User.provider_id == BREAKGLASS_PROVIDER, User.subject == name)
            .execution_options(populate_existing=True)
        )
        assert user is not None
        user.deactivated_at = None
        return user

    async def unlock(self, db: AsyncSession, actor: Actor, actor_id: str) -> BreakglassCredential:
        """Lift a lockout and forget counted failures (caller commits)."""
        row = await self._get(db, actor_id)
        row.failed_attempts = 0
        row.window_started_at = None
        row.locked_until = None
        self._audit(db, actor, "auth.breakglass.unlock", row)
        return row

    async def remove(self, db: AsyncSession, actor: Actor, actor_id: str) -> None:
        """Delete the credential, the user's grants and sessions (409 for the last admin)."""
        row = await self._get(db, actor_id)
        grants = await db.scalars(
            select(RoleGrant).where(RoleGrant.actor_type == "User", RoleGrant.actor_id == actor_id)
        )
        for grant in list(grants):
            try:
                await remove_grant(db, grant)
            except Conflict:
                raise Conflict(
                    "this break-glass account holds the last admin grant; grant r-admin to "
                    "another actor before removing it"
                ) from None
            audit_grant(db, actor, "auth.role.revoke", grant)
        await revoke_sessions(db, user_id=actor_id, reason="break-glass credential removed")
        user = await db.get(User, actor_id)
        if user is not None and user.deactivated_at is None:
            user.deactivated_at = utcnow()
        self._audit(db, actor, "auth.breakglass.credential.delete", row)
        await db.execute(
            delete(BreakglassCredential).where(BreakglassCredential.actor_id == actor_id)
        )

    async def _get(self, db: AsyncSession, actor_id: str) -> BreakglassCredential:
        row = await db.get(BreakglassCredential, actor_id)
        if row is None:
            raise NotFound(f"no break-glass credential for {actor_id!r}")
        return row

    @staticmethod
    def _audit(
        db: AsyncSession,
        actor: Actor,
        action: str,
        row: BreakglassCredential,
        **details: Any,
    ) -> None:
        record(
            db,
            actor,
            action,
            resource_type="breakglass_credential",
            resource_id=row.actor_id,
            category="auth",
            details={"username": row.username, "role_id": row.role_id, **details},
        )
