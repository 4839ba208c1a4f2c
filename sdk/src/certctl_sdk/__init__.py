"""certctl-sdk: the public API plugins are written against."""

from certctl_sdk.auth import AuthProvider, AuthRequest, Principal
from certctl_sdk.authority import AuthorityProvider, CaSigner, SigningAuthority
from certctl_sdk.config import (
    MASK,
    ConnectorConfig,
    Secret,
    config_schema,
    decode_config,
    encode_config,
    reveal,
)
from certctl_sdk.connector import (
    CheckResult,
    Connector,
    ConnectorContext,
    SecretResolver,
    StateStore,
)
from certctl_sdk.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    DeploymentError,
    RejectedError,
    TransientError,
    UnsupportedOperation,
)
from certctl_sdk.events import EventType, LifecycleEvent
from certctl_sdk.filedeploy import (
    DeployOutcome,
    DeployPlan,
    FileTarget,
    ManagedFile,
    TlsCheck,
    apply_plan,
)
from certctl_sdk.hookspecs import PROJECT_NAME, hookimpl, hookspec
from certctl_sdk.issuer import (
    CrlEntry,
    CrlRequest,
    IssuedCertificate,
    Issuer,
    IssuerCapability,
    IssueRequest,
    IssueResult,
    PendingIssuance,
    RenewalWindow,
    RevokeRequest,
    SubordinateRequest,
)
from certctl_sdk.models import (
    CertificateBundle,
    ExtendedKeyUsage,
    KeyType,
    RevocationReason,
    SubjectAltNames,
)
from certctl_sdk.notifier import Notification, Notifier, Severity
from certctl_sdk.scanner import DiscoveredCertificate, Scanner
from certctl_sdk.target import DeployRequest, DeployResult, Target, TargetCapability

__version__ = "0.1.0"

__all__ = [
    "MASK",
    "PROJECT_NAME",
    "AuthProvider",
    "AuthRequest",
    "AuthenticationError",
    "AuthorityProvider",
    "CaSigner",
    "CertificateBundle",
    "CheckResult",
    "ConfigurationError",
    "Connector",
    "ConnectorConfig",
    "ConnectorContext",
    "ConnectorError",
    "CrlEntry",
    "CrlRequest",
    "DeployOutcome",
    "DeployPlan",
    "DeployRequest",
    "DeployResult",
    "DeploymentError",
    "DiscoveredCertificate",
    "EventType",
    "ExtendedKeyUsage",
    "FileTarget",
    "IssueRequest",
    "IssueResult",
    "IssuedCertificate",
    "Issuer",
    "IssuerCapability",
    "KeyType",
    "LifecycleEvent",
    "ManagedFile",
    "Notification",
    "Notifier",
    "PendingIssuance",
    "Principal",
    "RejectedError",
    "RenewalWindow",
    "RevocationReason",
    "RevokeRequest",
    "Scanner",
    "Secret",
    "SecretResolver",
    "Severity",
    "SigningAuthority",
    "StateStore",
    "SubjectAltNames",
    "SubordinateRequest",
    "Target",
    "TargetCapability",
    "TlsCheck",
    "TransientError",
    "UnsupportedOperation",
    "apply_plan",
    "config_schema",
    "decode_config",
    "encode_config",
    "hookimpl",
    "hookspec",
    "reveal",
]
