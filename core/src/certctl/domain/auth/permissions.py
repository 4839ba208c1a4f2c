"""The permission catalogue and the permissions of the seven built-in roles.

The catalogue is the reference's 82 permissions plus the ones certctl adds for its own APIs
(``plugin.read``, ``scheduler.read``, ``scheduler.run``, and ``acme.admin`` from migration
0012). Migration 0007 seeds the database
from a frozen copy of these tables; a test compares the migrated database with them, so a
permission added here without a migration (or the other way round) fails the suite.

``admin`` holds every permission and is therefore not listed per permission.
"""

from __future__ import annotations

__all__ = [
    "ALL_PERMISSIONS",
    "BUILTIN_ROLES",
    "CATALOGUE",
    "ROLE_PERMISSIONS",
    "namespace_of",
]

CATALOGUE: dict[str, tuple[str, ...]] = {
    "cert.read": ("operator", "viewer", "agent", "mcp", "cli"),
    "cert.issue": ("operator", "mcp", "cli"),
    "cert.edit": ("operator", "mcp", "cli"),
    "cert.revoke": ("operator", "mcp", "cli"),
    "cert.delete": ("operator", "cli"),
    "profile.read": ("operator", "viewer", "mcp", "cli"),
    "profile.edit": ("operator", "mcp", "cli"),
    "profile.delete": (),
    "issuer.read": ("operator", "viewer", "mcp", "cli"),
    "issuer.edit": ("operator", "mcp", "cli"),
    "issuer.delete": (),
    "target.read": ("operator", "viewer", "mcp", "cli"),
    "target.edit": ("operator", "mcp", "cli"),
    "target.delete": ("operator", "cli"),
    "agent.read": ("operator", "viewer", "mcp", "cli"),
    "agent.edit": ("operator", "cli"),
    "agent.retire": (),
    "agent.heartbeat": ("agent",),
    "agent.job.poll": ("agent",),
    "agent.job.complete": ("agent",),
    "agent.job.report": ("agent",),
    "audit.read": ("operator", "viewer", "mcp", "cli", "auditor"),
    "audit.export": ("auditor",),
    "auth.role.list": (),
    "auth.role.create": (),
    "auth.role.edit": (),
    "auth.role.delete": (),
    "auth.role.assign": (),
    "auth.role.revoke": (),
    "auth.key.list": ("cli",),
    "auth.key.create": ("cli",),
    "auth.key.rotate": ("cli",),
    "auth.key.delete": (),
    "auth.bootstrap.use": (),
    "cert.bulk_revoke": (),
    "crl.admin": (),
    "scep.admin": (),
    "est.admin": (),
    "ca.hierarchy.manage": (),
    "auth.session.list": (),
    "auth.session.list.all": (),
    "auth.session.revoke": (),
    "auth.oidc.list": (),
    "auth.oidc.create": (),
    "auth.oidc.edit": (),
    "auth.oidc.delete": (),
    "auth.breakglass.admin": (),
    "auth.breakglass.login": (),
    "job.read": ("operator", "viewer", "mcp", "cli"),
    "job.cancel": ("operator", "mcp", "cli"),
    "approval.read": ("operator", "viewer", "mcp", "cli"),
    "approval.approve": ("operator", "mcp", "cli"),
    "approval.reject": ("operator", "mcp", "cli"),
    "policy.read": ("operator", "viewer", "mcp", "cli"),
    "policy.edit": ("operator", "cli"),
    "policy.delete": ("operator", "cli"),
    "team.read": ("operator", "viewer", "mcp", "cli"),
    "team.edit": ("operator", "cli"),
    "team.delete": ("operator",),
    "owner.read": ("operator", "viewer", "mcp", "cli"),
    "owner.edit": ("operator", "cli"),
    "owner.delete": ("operator",),
    "notification.read": ("operator", "viewer", "mcp", "cli"),
    "notification.edit": ("operator", "mcp", "cli"),
    "discovery.read": ("operator", "viewer", "mcp", "cli"),
    "discovery.run": ("operator", "agent", "cli"),
    "discovery.claim": ("operator", "mcp", "cli"),
    "network_scan.read": ("operator", "viewer", "mcp", "cli"),
    "network_scan.edit": ("operator", "cli"),
    "network_scan.run": ("operator", "mcp", "cli"),
    "healthcheck.read": ("operator", "viewer", "mcp", "cli"),
    "healthcheck.edit": ("operator", "cli"),
    "healthcheck.delete": ("operator",),
    "healthcheck.acknowledge": ("operator", "mcp", "cli"),
    "digest.read": ("operator", "viewer", "mcp", "cli"),
    "digest.send": ("operator", "cli"),
    "verification.read": ("operator", "viewer", "mcp", "cli"),
    "verification.run": ("operator", "mcp", "cli"),
    "stats.read": ("operator", "viewer", "mcp", "cli"),
    "metrics.read": ("operator", "viewer", "mcp", "cli"),
    # The reference also gives auditors auth.user.read; certctl keeps auditors to the trail.
    "auth.user.read": ("operator",),
    "auth.user.deactivate": (),
    # certctl's own additions.
    "plugin.read": ("operator", "viewer", "mcp", "cli"),
    "scheduler.read": ("operator", "viewer", "mcp", "cli"),
    "scheduler.run": ("operator", "cli"),
    # ACME server: External Account Binding keys and the accounts they bind (migration 0012).
    "acme.admin": (),
}
"""Permission → the built-in roles other than ``admin`` that hold it."""

BUILTIN_ROLES: dict[str, tuple[str, str]] = {
    "r-admin": ("admin", "Everything, including RBAC, SSO and break-glass administration."),
    "r-operator": ("operator", "Certificate lifecycle and configuration; no RBAC administration."),
    "r-viewer": ("viewer", "Read-only access to inventory, configuration and the audit trail."),
    "r-agent": ("agent", "Machine identity of a pull-only agent: heartbeat, jobs, discovery."),
    "r-mcp": ("mcp", "AI assistants through the MCP server: operator without destructive verbs."),
    "r-cli": ("cli", "The command-line client: operator-like, plus managing its own keys."),
    "r-auditor": ("auditor", "Reads and exports the audit trail and lists users; nothing else."),
}
"""Role id → (name, description)."""

ALL_PERMISSIONS: frozenset[str] = frozenset(CATALOGUE)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    role_id: (
        ALL_PERMISSIONS
        if name == "admin"
        else frozenset(p for p, holders in CATALOGUE.items() if name in holders)
    )
    for role_id, (name, _) in BUILTIN_ROLES.items()
}
"""Built-in role id → its permissions."""


def namespace_of(permission: str) -> str:
    """``auth.role.list`` → ``auth``; the grouping the catalogue API reports."""
    return permission.split(".", 1)[0]
