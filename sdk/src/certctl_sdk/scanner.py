"""Scanners: connectors that discover certificates already in use (hosts, cloud stores, ports)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import ClassVar, TypeVar

import msgspec

from certctl_sdk.config import ConnectorConfig
from certctl_sdk.connector import Connector

__all__ = ["DiscoveredCertificate", "Scanner"]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


class DiscoveredCertificate(msgspec.Struct, frozen=True, kw_only=True):
    """A certificate found in the wild and where it was found (a path, URL or ARN)."""

    certificate_pem: str
    location: str
    chain_pem: tuple[str, ...] = ()
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class Scanner(Connector[ConfigT], abc.ABC):
    """Base class of discovery scanners; never modifies what it scans."""

    family: ClassVar[str] = "scanner"

    @abc.abstractmethod
    def scan(self) -> AsyncIterator[DiscoveredCertificate]:
        """Yield each certificate found (implement as ``async def`` with ``yield``)."""
