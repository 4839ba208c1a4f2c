"""All models, importable from one place (Alembic reads ``Base.metadata`` from here)."""

from certctl.db.models.audit import AuditEvent
from certctl.db.models.auth import ApiKey, SystemFlag
from certctl.db.models.certificate import (
    CertificateProfile,
    CertificateTarget,
    CertificateVersion,
    Deployment,
    ManagedCertificate,
)
from certctl.db.models.connector import ConnectorInstance, ConnectorState
from certctl.db.models.job import Job
from certctl.db.models.ocsp import OcspResponder
from certctl.db.models.revocation import CertificateRevocation, CrlState
from certctl.db.models.scheduler import SchedulerLease, SchedulerLoopRun, SchedulerReplica

__all__ = [
    "ApiKey",
    "AuditEvent",
    "CertificateProfile",
    "CertificateRevocation",
    "CertificateTarget",
    "CertificateVersion",
    "ConnectorInstance",
    "ConnectorState",
    "CrlState",
    "Deployment",
    "Job",
    "ManagedCertificate",
    "OcspResponder",
    "SchedulerLease",
    "SchedulerLoopRun",
    "SchedulerReplica",
    "SystemFlag",
]
