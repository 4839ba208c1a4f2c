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

__all__ = [
    "ApiKey",
    "AuditEvent",
    "CertificateProfile",
    "CertificateTarget",
    "CertificateVersion",
    "ConnectorInstance",
    "ConnectorState",
    "Deployment",
    "Job",
    "ManagedCertificate",
    "SystemFlag",
]
