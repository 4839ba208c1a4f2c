"""Wire types of the approval API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

__all__ = ["ApprovalOut", "DecisionIn"]


class DecisionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An approve or reject decision; the note is kept on the request and in the audit trail."""

    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class ApprovalOut(msgspec.Struct, kw_only=True):
    """An approval request and, once decided, who decided it and how."""

    id: str
    kind: str
    """``cert_issuance``, ``cert_renewal``, ``profile_edit`` or ``profile_delete``."""
    state: str
    """``pending``, then one of ``approved``, ``rejected``, ``expired`` or ``cancelled``."""
    certificate_id: str | None
    job_id: str | None
    profile_id: str | None
    requested_by: str
    decided_by: str | None
    decided_at: datetime | None
    note: str
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
