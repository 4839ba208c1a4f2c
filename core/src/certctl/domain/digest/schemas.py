"""Wire types of the digest API."""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["Digest", "DigestCertificate", "DigestFailure", "DigestSent"]


class DigestCertificate(msgspec.Struct, kw_only=True):
    """A certificate named in the digest."""

    id: str
    name: str
    common_name: str
    expires_at: datetime | None


class DigestFailure(msgspec.Struct, kw_only=True):
    """A job that failed for good in the last 24 hours."""

    job_id: str
    type: str
    certificate_id: str | None
    error: str | None
    failed_at: datetime | None


class Digest(msgspec.Struct, kw_only=True):
    """The state of the estate; lists hold at most 50 entries, the counts are complete."""

    generated_at: datetime
    total_certificates: int
    certificates_by_status: dict[str, int]
    expiring_7d_count: int
    expiring_7d: list[DigestCertificate]
    expiring_30d_count: int
    expiring_30d: list[DigestCertificate]
    failed_jobs_24h_count: int
    failed_jobs_24h: list[DigestFailure]
    dead_notifications: int
    subject: str
    body: str


class DigestSent(msgspec.Struct, kw_only=True):
    """The digest notifications a send queued (or found already queued) and their states."""

    notification_ids: list[str]
    created: int
