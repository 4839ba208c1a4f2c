"""Checking a session cookie on every request without a query per request.

A verified cookie is cached in process, keyed by its exact value, until the auth generation
moves; every session revocation and user deactivation bumps the generation, so another
replica honours it within ``CERTCTL_AUTH_CACHE_MS`` and this one at once. What depends on the
clock (absolute and idle expiry, the signing key's retention) is checked on every request,
cached or not.

Idle tracking: the last request time is kept in memory and written to the session row only
when it has moved by ``last_seen_write_interval`` (60 s, or a quarter of the idle timeout if
that is shorter). A session looks idle-expired here only after re-reading that row, so a
replica that did not serve the latest requests sees them up to one write interval late: a
session can end up to that interval *before* its idle timeout, never after it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection, Request
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import utcnow
from certctl.db.models import BrowserSession, User
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import GenerationWatch
from certctl.domain.auth.rbac import RoleResolver
from certctl.domain.sessions.cookies import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    clearing_cookies,
    parse_cookie,
    sha256_hex,
    verify_mac,
)
from certctl.domain.sessions.keys import SigningKeyRing
from certctl.errors import Forbidden, Unauthorized
from certctl.lib.encryption import SecretBox

if TYPE_CHECKING:
    from litestar.datastructures import Cookie

    from certctl.runtime import Runtime
    from certctl.settings import Settings

__all__ = [
    "SessionManager",
    "SessionRejected",
    "Sweep",
    "ValidSession",
    "check_csrf",
    "client_address",
    "user_agent",
]

_CACHE_MAX = 10_000
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_USER_AGENT = 512

Sweep = Callable[["Runtime"], Awaitable[int]]
"""A clean-up step of the session GC loop; returns how many rows it removed."""


class SessionRejected(Unauthorized):
    """401 for a session cookie that is no longer (or never was) good; clears the cookies."""

    def __init__(self, detail: str, *, samesite: str) -> None:
        super().__init__(detail)
        self.cookies: list[Cookie] = clearing_cookies(samesite)


@dataclass(slots=True)
class ValidSession:
    """A verified session as this process caches it."""

    session_id: str
    user_id: str
    display_name: str
    group_ids: tuple[str, ...]
    csrf_hash: str
    key_id: str
    expires_at: datetime
    last_seen: datetime
    """The latest request this process saw (or the row's value when loaded)."""
    written: datetime
    """The ``last_seen_at`` the row holds, as far as this process knows."""
    client_ip: str
    user_agent: str


def _method(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.method if isinstance(connection, Request) else ""


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer address of the request (what IP binding compares)."""
    return connection.client.host if connection.client else ""


def user_agent(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The request's User-Agent, cut to what the session row stores."""
    return connection.headers.get("user-agent", "")[:MAX_USER_AGENT]


class SessionManager:
    """Sessions of one process: the cookie check, the cache, the signing keys, GC sweeps."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        generation: GenerationWatch,
        roles: RoleResolver,
    ) -> None:
        self.settings = settings
        self.clock: Callable[[], datetime] = utcnow
        """The time sessions are judged by (tests move it instead of sleeping)."""
        self._sessions = sessions
        self._generation = generation
        self._roles = roles
        self.keys = SigningKeyRing(
            sessions,
            box,
            generation,
            rotation_seconds=settings.session_signing_key_rotation,
            retention_seconds=settings.session_signing_key_retention,
            clock=lambda: self.clock(),
        )
        self.idle_timeout = timedelta(seconds=settings.session_idle_timeout)
        self.absolute_timeout = timedelta(seconds=settings.session_absolute_timeout)
        self.last_seen_write_interval = min(timedelta(seconds=60), self.idle_timeout / 4)
        self._cache: dict[str, ValidSession] = {}
        self._seen = -1
        self.sweeps: list[tuple[str, Sweep]] = []
        """Extra steps of the session GC loop (pre-login rows, logout-token ids …)."""

    def add_sweep(self, name: str, sweep: Sweep) -> None:
        """Run ``sweep`` in every session GC round (other features' short-lived rows)."""
        self.sweeps.append((name, sweep))

    def reject(self, detail: str) -> SessionRejected:
        """The 401 that also clears the browser's session cookies."""
        return SessionRejected(detail, samesite=self.settings.session_samesite)

    async def authenticate(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
        """Credential source for :class:`Authenticator`: the session cookie, if sent.

        A request with an ``Authorization`` header is an API client: its key decides, and any
        cookies it also carries are ignored (and so is CSRF, which only guards cookies).
        """
        if "authorization" in connection.headers:
            return None
        raw = connection.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        now = self.clock()
        valid = await self.validate(raw, now)
        self._check_binding(valid, connection)
        if _method(connection) in UNSAFE_METHODS:
            check_csrf(connection, valid)
        await self._touch(valid, now)
        return await self._roles.actor(
            "User",
            valid.user_id,
            groups=valid.group_ids,
            session_id=valid.session_id,
            display_name=valid.display_name,
        )

    async def validate(self, raw: str, now: datetime) -> ValidSession:
        """The live session behind cookie value ``raw``, or :class:`SessionRejected`."""
        generation = await self._generation.current()
        if generation != self._seen:
            self._cache.clear()
            self._seen = generation
            await self.keys.sync(generation)
        valid = self._cache.get(raw)
        if valid is None:
            valid = await self._verify(raw, now)
        elif not self.keys.valid(valid.key_id, now):
            self._cache.pop(raw, None)
            raise self.reject("the session cookie was signed by a retired key; sign in again")
        if now >= valid.expires_at:
            self._cache.pop(raw, None)
            raise self.reject("the session has expired; sign in again")
        if now - valid.last_seen > self.idle_timeout:
            fresh = await self._load(valid.key_id, valid.session_id, by_id=True)
            if fresh is None or now - fresh.last_seen > self.idle_timeout:
                self._cache.pop(raw, None)
                raise self.reject("the session ended after inactivity; sign in again")
            valid.last_seen = valid.written = fresh.last_seen  # another replica served it
        return valid

    async def _verify(self, raw: str, now: datetime) -> ValidSession:
        parsed = parse_cookie(raw)
        if parsed is None:
            raise self.reject("malformed session cookie")
        key = await self.keys.verifying_key(parsed.key_id, now)
        if key is None:
            raise self.reject("the session cookie's signing key is unknown or retired")
        if not verify_mac(key, parsed):
            raise self.reject("the session cookie's signature is invalid")
        valid = await self._load(parsed.key_id, sha256_hex(parsed.token))
        if valid is None:
            raise self.reject("the session has ended (signed out, revoked or user deactivated)")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[raw] = valid
        return valid

    async def _load(self, key_id: str, lookup: str, *, by_id: bool = False) -> ValidSession | None:
        """The live (not revoked, user active) session by token hash or by id."""
        column = BrowserSession.id if by_id else BrowserSession.token_hash
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(BrowserSession, User.display_name)
                    .join(User, User.id == BrowserSession.user_id)
                    .where(
                        column == lookup,
                        BrowserSession.revoked_at.is_(None),
                        User.deactivated_at.is_(None),
                    )
                )
            ).first()
        if row is None:
            return None
        s, display_name = row
        return ValidSession(
            session_id=s.id,
            user_id=s.user_id,
            display_name=display_name,
            group_ids=tuple(s.group_ids),
            csrf_hash=s.csrf_hash,
            key_id=key_id,
            expires_at=s.expires_at,
            last_seen=s.last_seen_at,
            written=s.last_seen_at,
            client_ip=s.client_ip,
            user_agent=s.user_agent,
        )

    def _check_binding(
        self, valid: ValidSession, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> None:
        if self.settings.session_bind_ip and client_address(connection) != valid.client_ip:
            raise self.reject("this session is bound to another client address; sign in again")
        if self.settings.session_bind_user_agent and user_agent(connection) != valid.user_agent:
            raise self.reject("this session is bound to another browser; sign in again")

    async def _touch(self, valid: ValidSession, now: datetime) -> None:
        """Note the request; write ``last_seen_at`` only once per write interval."""
        if now > valid.last_seen:
            valid.last_seen = now
        if now - valid.written < self.last_seen_write_interval:
            return
        valid.written = now  # before the await: concurrent requests must not all write
        async with self._sessions() as session:
            await session.execute(
                update(BrowserSession)
                .where(BrowserSession.id == valid.session_id, BrowserSession.last_seen_at < now)
                .values(last_seen_at=now)
            )
            await session.commit()

    def forget(self, raw: str) -> None:
        """Drop a cookie from this process's cache (it was just revoked here)."""
        self._cache.pop(raw, None)


def check_csrf(connection: ASGIConnection[Any, Any, Any, Any], valid: ValidSession) -> None:
    """Double submit: the header must equal the CSRF cookie and the session's stored token."""
    header = connection.headers.get(CSRF_HEADER.lower(), "")
    if not header:
        raise Forbidden(
            f"CSRF check failed: a session-authenticated {_method(connection)} needs the "
            f"{CSRF_HEADER} header, echoing the {CSRF_COOKIE} cookie"
        )
    cookie = connection.cookies.get(CSRF_COOKIE, "")
    if not hmac.compare_digest(cookie.encode(), header.encode()):
        raise Forbidden(f"CSRF check failed: {CSRF_HEADER} does not match the {CSRF_COOKIE} cookie")
    if not hmac.compare_digest(sha256_hex(header), valid.csrf_hash):
        raise Forbidden(f"CSRF check failed: {CSRF_HEADER} is not this session's token")
