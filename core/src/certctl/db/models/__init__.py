"""All models, importable from one place (Alembic reads ``Base.metadata`` from here)."""

from certctl.db.models.approval import ApprovalRequest
from certctl.db.models.audit import AuditChainHead, AuditEvent
from certctl.db.models.auth import ApiKey, SystemFlag
from certctl.db.models.certificate import (
    CertificateProfile,
    CertificateTarget,
    CertificateVersion,
    Deployment,
    ManagedCertificate,
)
from certctl.db.models.compliance import ComplianceViolation, PolicyRule
from certctl.db.models.connector import ConnectorInstance, ConnectorState
from certctl.db.models.job import Job
from certctl.db.models.notification import Notification
from certctl.db.models.ocsp import OcspResponder
from certctl.db.models.rbac import AuthGeneration, Permission, Role, RoleGrant, RolePermission
from certctl.db.models.renewal_policy import RenewalPolicy
from certctl.db.models.revocation import CertificateRevocation, CrlState
from certctl.db.models.scheduler import SchedulerLease, SchedulerLoopRun, SchedulerReplica

__all__ = [
    "ApiKey",
    "ApprovalRequest",
    "AuditChainHead",
    "AuditEvent",
    "AuthGeneration",
    "CertificateProfile",
    "CertificateRevocation",
    "CertificateTarget",
    "CertificateVersion",
    "ComplianceViolation",
    "ConnectorInstance",
    "ConnectorState",
    "CrlState",
    "Deployment",
    "Job",
    "ManagedCertificate",
    "Notification",
    "OcspResponder",
    "Permission",
    "PolicyRule",
    "RenewalPolicy",
    "Role",
    "RoleGrant",
    "RolePermission",
    "SchedulerLease",
    "SchedulerLoopRun",
    "SchedulerReplica",
    "SystemFlag",
]
