"""Permission names (the reference's catalogue) and what each built-in role holds.

This issue ships two roles for API keys — ``admin`` (everything) and ``viewer`` (read-only) —
with the catalogue's names so that full RBAC (custom roles, grants, scopes) slots in without
renaming a single route's permission.
"""

from __future__ import annotations

__all__ = ["ALL_PERMISSIONS", "ROLE_PERMISSIONS", "permissions_for"]

ALL_PERMISSIONS: frozenset[str] = frozenset(
    {
        "cert.read",
        "cert.issue",
        "cert.edit",
        "cert.revoke",
        "cert.bulk_revoke",
        "cert.delete",
        "profile.read",
        "profile.edit",
        "profile.delete",
        "issuer.read",
        "issuer.edit",
        "issuer.delete",
        "target.read",
        "target.edit",
        "target.delete",
        "notification.read",
        "notification.edit",
        "policy.read",
        "policy.edit",
        "policy.delete",
        "digest.read",
        "digest.send",
        "job.read",
        "job.cancel",
        "audit.read",
        "audit.export",
        "auth.key.list",
        "auth.key.create",
        "auth.key.delete",
        "plugin.read",
        "approval.read",
        "approval.approve",
        "approval.reject",
        # Not in the reference catalogue, which has no scheduler API: status and run-now.
        "scheduler.read",
        "scheduler.run",
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": ALL_PERMISSIONS,
    "viewer": frozenset(
        {
            "cert.read",
            "profile.read",
            "issuer.read",
            "target.read",
            "notification.read",
            "policy.read",
            "digest.read",
            "job.read",
            "audit.read",
            "plugin.read",
            "scheduler.read",
            "approval.read",
        }
    ),
}


def permissions_for(role: str) -> frozenset[str]:
    """The permissions a role grants; unknown roles grant nothing."""
    return ROLE_PERMISSIONS.get(role, frozenset())
