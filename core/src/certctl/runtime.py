"""Everything one server process owns, built by ``create_app`` and kept on ``app.state``.

Nothing here is global: tests build as many runtimes as they like, each with its own database,
plugin host and worker.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from certctl import __version__
from certctl.db.engine import create_engine, make_sessionmaker
from certctl.db.migrate import migrate
from certctl.domain.auth.authenticator import Authenticator
from certctl.domain.auth.generation import GenerationWatch
from certctl.domain.auth.keystore import ApiKeyStore
from certctl.domain.auth.rbac import RoleResolver
from certctl.domain.connectors.service import ConnectorService
from certctl.domain.sessions.manager import SessionManager
from certctl.lib.encryption import SecretBox
from certctl.plugins.manager import PluginHost, load_plugins
from certctl.settings import Settings

if TYPE_CHECKING:
    from certctl.scheduler import Scheduler

__all__ = ["Runtime", "demo_encryption_key"]

_log = logging.getLogger("certctl")


def demo_encryption_key(data_dir: str) -> str:
    """Demo mode only: a random key kept in the data directory (0600), made on first start."""
    path = Path(data_dir) / "demo-encryption.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


class Runtime:
    """The process's resources and services."""

    def __init__(
        self, settings: Settings, host: PluginHost | None = None, *, role: str = "serve"
    ) -> None:
        from certctl.worker.runner import Worker

        self.settings = settings
        self.host = host or load_plugins(
            load=settings.load_plugins,
            disable=settings.disable_plugins,
            trace=settings.trace_plugins,
            logger=logging.getLogger("certctl.plugins"),
        )
        passphrase = settings.config_encryption_key or demo_encryption_key(settings.data_dir)
        self.box = SecretBox(passphrase)
        # CA key stores: file always, a PKCS#11 token when configured (SettingsError if broken;
        # opened before anything that would need closing).
        from certctl.domain.hierarchy.keystores import KeyStores

        self.key_stores = KeyStores(self.box, settings.pkcs11)
        self.engine: AsyncEngine = create_engine(
            settings.effective_database_url, pool_size=settings.database_pool_size
        )
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=10.0),
            headers={"User-Agent": f"certctl/{__version__}"},
            follow_redirects=False,
        )
        self.auth_generation = GenerationWatch(self.sessions, settings.auth_cache_ms)
        self.keys = ApiKeyStore(settings.api_keys_named, self.sessions, self.auth_generation)
        self.roles = RoleResolver(self.sessions, self.auth_generation)
        self.auth_methods: list[str] = []
        """Sign-in methods beyond API keys (``sso``, ``breakglass``) for ``/api/v1/auth/info``."""
        self.auth = Authenticator(
            demo=settings.auth_type == "none", keys=self.keys, roles=self.roles
        )
        # --- browser sessions (domain/sessions) ---
        self.browser_sessions = SessionManager(
            settings, self.sessions, self.box, self.auth_generation, self.roles
        )
        """Session cookies, CSRF, signing keys; ``self.sessions`` is the database's."""
        self.auth.add_source(self.browser_sessions.authenticate)
        # guard: the request rate limit and break-glass sign-in (issue 4)
        from certctl.domain.breakglass.service import BreakglassService
        from certctl.lib.ratelimit_http import RequestLimits

        self.rate_limits = RequestLimits(settings)
        self.breakglass = BreakglassService(self)
        # SSO (oidc): expired pre-login rows and used logout-token ids go with the session GC.
        from certctl.domain.sso.gc import collect_sso_garbage

        self.browser_sessions.add_sweep("sso", collect_sso_garbage)
        # audit: hash-chain verification, one walk at a time per process
        from certctl.domain.audit.verify import ChainVerifier

        self.audit_chain = ChainVerifier(self.engine)
        self.connectors = ConnectorService(
            self.host.registry, self.sessions, self.box, self.http, self.key_stores
        )
        self.worker = Worker(self)
        self.role = role
        self.scheduler: Scheduler | None = None
        """The named loops (None when background work is off, as in most tests)."""

    async def start(self, *, background: bool = True) -> None:
        """Migrate the schema, then start the scheduler's loops (worker, renewal scan, sweeps)."""
        revision = await migrate(self.engine)
        _log.info("database schema at revision %s", revision)
        from certctl.domain.auth.seeding import seed_grants

        await seed_grants(self)
        for failure in self.host.registry.failures:
            _log.error(
                "plugin %s (%s) not loaded: %s", failure.name, failure.distribution, failure.error
            )
        if background and self.settings.worker_enabled:
            from certctl.scheduler import Scheduler

            self.scheduler = Scheduler(self, role=self.role)
            await self.scheduler.start()
        await self.breakglass.start()  # guard (issue 4): WARN when enabled, dummy hash
        # SSO (oidc): a provider declared in CERTCTL_OIDC_PROVIDER_FILE.
        from certctl.domain.sso.seed import seed_provider

        await seed_provider(self)

    def scheduler_wake(self, loop: str) -> None:
        """Run a wakeable loop now (no-op when this process runs no background work)."""
        if self.scheduler is not None:
            self.scheduler.wake(loop)

    async def stop(self) -> None:
        """Stop background work and release every resource."""
        await self.rate_limits.aclose()  # guard (issue 4)
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        await self.connectors.aclose()
        await self.http.aclose()
        await self.engine.dispose()
        self.key_stores.close()
