"""Wire types of the compliance policy API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from certctl.domain.compliance.rules import RuleType, Severity

__all__ = ["PolicyIn", "PolicyOut", "PolicyUpdate", "ViolationOut"]


class PolicyIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Create a compliance rule; ``config``'s shape depends on ``type``."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    description: str = ""
    type: RuleType
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    severity: Severity = "Warning"
    enabled: bool = True


class PolicyUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Change a rule; omitted fields keep their values (a new type needs a fitting config)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    description: str | None = None
    type: RuleType | None = None
    config: dict[str, Any] | None = None
    severity: Severity | None = None
    enabled: bool | None = None


class PolicyOut(msgspec.Struct, kw_only=True):
    """A compliance rule."""

    id: str
    name: str
    description: str
    type: str
    config: dict[str, Any]
    severity: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ViolationOut(msgspec.Struct, kw_only=True):
    """A rule a certificate currently breaks."""

    id: str
    rule_id: str
    rule_name: str
    certificate_id: str
    severity: str
    message: str
    first_seen_at: datetime
    last_seen_at: datetime
