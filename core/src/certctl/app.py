"""The application factory: ``create_app(settings)`` builds a ready Litestar app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from certctl import __version__
from certctl.domain.acme.challenges import ChallengeRunner
from certctl.domain.acme.controller import AcmeController
from certctl.domain.acme.eab_controller import AcmeAdminController
from certctl.domain.acme.replacement_controller import ReplacementController
from certctl.domain.approvals.controller import ApprovalController
from certctl.domain.audit.controller import AuditController
from certctl.domain.auth.controller import AuthController
from certctl.domain.auth.guards import authorize
from certctl.domain.auth.keys_controller import KeysController
from certctl.domain.auth.roles_controller import GrantsController, RolesController
from certctl.domain.breakglass.controller import breakglass_controllers
from certctl.domain.certificates.controller import CertificateController
from certctl.domain.compliance.controller import PolicyController
from certctl.domain.connectors.controller import connector_controllers
from certctl.domain.digest.controller import DigestController
from certctl.domain.est.controller import EstAdminController, EstController
from certctl.domain.est.service import EstService
from certctl.domain.hierarchy.controller import IntermediateController
from certctl.domain.jobs.controller import JobController
from certctl.domain.notifications.controller import NotificationController
from certctl.domain.ocsp.asgi import OcspFastPath
from certctl.domain.ocsp.controller import OcspController
from certctl.domain.ocsp.service import responder_service
from certctl.domain.pki.controller import CaCertificateController
from certctl.domain.profiles.controller import ProfileController
from certctl.domain.renewal_policies.controller import RenewalPolicyController
from certctl.domain.revocation.controller import CrlController, RevocationController
from certctl.domain.scep.admin_controller import ScepAdminController
from certctl.domain.scep.controller import scep_handlers
from certctl.domain.scep.service import ScepService
from certctl.domain.scheduler.controller import SchedulerController
from certctl.domain.sessions.controller import LogoutController, SessionsController
from certctl.domain.sso.admin_controller import SsoAdminController
from certctl.domain.sso.controller import SsoBrowserController
from certctl.domain.system.controller import SystemController
from certctl.domain.users.controller import UsersController
from certctl.lib.audit_middleware import AuditFailuresMiddleware
from certctl.lib.deps import DEPENDENCIES
from certctl.lib.problem import exception_handlers
from certctl.plugins.manager import PluginHost
from certctl.runtime import Runtime
from certctl.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    host: PluginHost | None = None,
    background: bool = True,
) -> Litestar:
    """Build the app. ``host`` injects a plugin host (tests); ``background`` runs the worker."""
    settings = settings or Settings.from_env()
    logging.getLogger("certctl").setLevel(settings.log_level.upper())
    runtime = Runtime(settings, host)

    acme = ChallengeRunner(runtime)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await runtime.start(background=background)
        try:
            yield
        finally:
            await acme.stop()
            await runtime.stop()

    app = Litestar(
        route_handlers=[
            SystemController,
            AuthController,
            KeysController,
            RolesController,
            GrantsController,
            *connector_controllers(),
            ProfileController,
            CertificateController,
            RevocationController,
            CrlController,
            CaCertificateController,
            IntermediateController,
            OcspController,
            JobController,
            SchedulerController,
            ApprovalController,
            PolicyController,
            AuditController,
            RenewalPolicyController,
            NotificationController,
            DigestController,
            # browser sessions and federated users
            SessionsController,
            LogoutController,
            UsersController,
            # guard: break-glass sign-in (only when CERTCTL_BREAKGLASS_ENABLED)
            *breakglass_controllers(settings),
            # SSO (oidc)
            SsoBrowserController,
            SsoAdminController,
            # ACME server (RFC 8555, RFC 9773)
            AcmeController,
            AcmeAdminController,
            ReplacementController,
            # EST server (RFC 7030)
            EstController,
            EstAdminController,
            # SCEP server (RFC 8894)
            *scep_handlers(),
            ScepAdminController,
        ],
        dependencies=DEPENDENCIES,
        guards=[authorize],
        exception_handlers=exception_handlers,
        middleware=[DefineMiddleware(AuditFailuresMiddleware)],
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_size,
        openapi_config=OpenAPIConfig(
            title="certctl",
            version=__version__,
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        debug=False,
    )
    app.state.runtime = runtime
    app.state.acme = acme
    app.state.est = EstService(runtime)
    app.state.ocsp = responder_service(runtime)
    app.state.scep = ScepService(runtime)
    # OCSP requests are answered ahead of routing and middleware (see domain/ocsp/asgi.py).
    app.asgi_handler = OcspFastPath(app.asgi_handler, app.state.ocsp)
    return app
