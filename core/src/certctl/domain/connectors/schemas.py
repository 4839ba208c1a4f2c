"""Wire types of the connector APIs (issuers, targets, notifiers and their kinds)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = ["CheckOut", "ConnectorCreate", "ConnectorKindOut", "ConnectorOut", "ConnectorUpdate"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class ConnectorCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a connector instance; ``config`` is validated against the kind's schema."""

    name: Name
    type: Annotated[str, msgspec.Meta(description="Connector kind, e.g. `local` or `nginx`.")]
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True


class ConnectorUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change a connector; a secret sent back as the mask keeps its stored value."""

    name: Name | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None


class ConnectorOut(msgspec.Struct, kw_only=True):
    """A connector instance with its secrets masked."""

    id: str
    name: str
    type: str
    config: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    last_tested_at: datetime | None
    test_status: str | None
    test_message: str | None


class ConnectorKindOut(msgspec.Struct, kw_only=True):
    """An installable connector kind and the JSON Schema of its configuration."""

    type: str
    display_name: str
    description: str
    capabilities: list[str]
    config_schema: dict[str, Any]
    distribution: str
    version: str


class CheckOut(msgspec.Struct, kw_only=True):
    """Result of a connector test."""

    ok: bool
    message: str
    details: dict[str, str]
