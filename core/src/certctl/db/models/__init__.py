"""All models, importable from one place (Alembic reads ``Base.metadata`` from here)."""

from certctl.db.models.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeEabKey,
    AcmeNonce,
    AcmeOrder,
)
from certctl.db.models.approval import ApprovalRequest
from certctl.db.models.audit import AuditChainHead, AuditEvent
from certctl.db.models.auth import ApiKey, SystemFlag
from certctl.db.models.breakglass import BreakglassCredential  # guard (issue 4)
from certctl.db.models.certificate import (
    CertificateProfile,
    CertificateTarget,
    CertificateVersion,
    Deployment,
    ManagedCertificate,
)
from certctl.db.models.compliance import ComplianceViolation, PolicyRule
from certctl.db.models.connector import ConnectorInstance, ConnectorState
from certctl.db.models.hierarchy import IntermediateCa
from certctl.db.models.job import Job
from certctl.db.models.notification import Notification
from certctl.db.models.ocsp import OcspResponder
from certctl.db.models.ratelimit import RateLimitBucket  # guard (issue 4)
from certctl.db.models.rbac import AuthGeneration, Permission, Role, RoleGrant, RolePermission
from certctl.db.models.renewal_policy import RenewalPolicy
from certctl.db.models.revocation import CertificateRevocation, CrlState
from certctl.db.models.scep import ScepChallenge, ScepTransaction
from certctl.db.models.scheduler import SchedulerLease, SchedulerLoopRun, SchedulerReplica

# sessions and federated users
from certctl.db.models.session import BrowserSession, SessionSigningKey
from certctl.db.models.sso import OidcLogoutJti, OidcPendingLogin  # SSO (oidc)
from certctl.db.models.user import User

__all__ = [
    "AcmeAccount",
    "AcmeAuthorization",
    "AcmeChallenge",
    "AcmeEabKey",
    "AcmeNonce",
    "AcmeOrder",
    "ApiKey",
    "ApprovalRequest",
    "AuditChainHead",
    "AuditEvent",
    "AuthGeneration",
    "BreakglassCredential",
    "BrowserSession",
    "CertificateProfile",
    "CertificateRevocation",
    "CertificateTarget",
    "CertificateVersion",
    "ComplianceViolation",
    "ConnectorInstance",
    "ConnectorState",
    "CrlState",
    "Deployment",
    "IntermediateCa",
    "Job",
    "ManagedCertificate",
    "Notification",
    "OcspResponder",
    # SSO (oidc)
    "OidcLogoutJti",
    "OidcPendingLogin",
    "Permission",
    "PolicyRule",
    "RateLimitBucket",
    "RenewalPolicy",
    "Role",
    "RoleGrant",
    "RolePermission",
    "ScepChallenge",
    "ScepTransaction",
    "SchedulerLease",
    "SchedulerLoopRun",
    "SchedulerReplica",
    "SessionSigningKey",
    "SystemFlag",
    "User",
]
