"""Targets: connectors that put a certificate where a server uses it.

A target reports what it changed; it must be idempotent (deploying the same certificate twice
changes nothing the second time) and must leave the previous certificate in service when it fails.
File-based targets should subclass :class:`certctl_sdk.filedeploy.FileTarget`.
"""

from __future__ import annotations

import abc
import enum
from typing import ClassVar, TypeVar

import msgspec

from certctl_sdk.config import ConnectorConfig, Secret
from certctl_sdk.connector import Connector
from certctl_sdk.errors import UnsupportedOperation

__all__ = [
    "DeployRequest",
    "DeployResult",
    "Target",
    "TargetCapability",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class TargetCapability(enum.StrEnum):
    """Optional operations a target supports."""

    REMOVE = "remove"
    """:meth:`Target.remove` withdraws a certificate (e.g. after revocation)."""
    VERIFY_TLS = "verify_tls"
    """Deployments end with a TLS handshake proving the endpoint serves the new certificate."""
    AGENT_KEY = "agent_key"
    """Works without the private key (the key never leaves the host: agent-side targets)."""


class DeployRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Install this certificate. ``private_key`` is None when the key lives on an agent's host."""

    certificate_id: str
    common_name: str
    certificate_pem: str
    chain_pem: tuple[str, ...]
    serial: str
    fingerprint_sha256: str
    private_key: Secret | None = None


class DeployResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a deployment did. ``changed`` is False when everything was already in place."""

    changed: bool
    message: str
    verified_serial: str | None = None
    details: dict[str, str] = msgspec.field(default_factory=dict)


class Target(Connector[ConfigT], abc.ABC):
    """Base class of deployment targets."""

    family: ClassVar[str] = "target"
    capabilities: ClassVar[frozenset[TargetCapability]] = frozenset()

    @abc.abstractmethod
    async def deploy(self, request: DeployRequest) -> DeployResult:
        """Install the certificate; raise DeploymentError (after rolling back) on failure."""

    async def remove(self, request: DeployRequest) -> DeployResult:
        """Withdraw the certificate (REMOVE)."""
        raise UnsupportedOperation(f"{self.kind} targets cannot withdraw certificates")
