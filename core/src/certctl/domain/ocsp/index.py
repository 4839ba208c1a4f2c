"""An in-memory copy of one issuer's revocations, kept in step with the database cheaply.

``certificate_revocations`` rows are never deleted or changed in the fields OCSP reads
(serial, time, reason), so the number of an issuer's rows is a complete change token: the
responder reads it (one indexed ``count``) at most every ``CERTCTL_OCSP_REFRESH_MS`` and, when
it moved, loads only the rows recorded since the newest one it holds (minus a margin for
transactions that committed late). Should the copy still hold fewer rows than counted, it is
reloaded whole, so it never stays wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import select

from certctl.db.models import CertificateRevocation

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["RevocationIndex", "Revoked"]

_LATE_COMMIT_MARGIN = timedelta(minutes=10)
"""Rows stamped this long before the newest known one are re-read on an incremental load."""


class Revoked(NamedTuple):
    """A revoked serial as OCSP reports it."""

    revoked_at: datetime
    """Truncated to the second, as it appears in responses."""
    reason: int
    """RFC 5280 CRLReason code."""


class RevocationIndex:
    """Revoked serials (lower-case hex) of one issuer."""

    def __init__(self, issuer_id: str) -> None:
        self.issuer_id = issuer_id
        self.revoked: dict[str, Revoked] = {}
        self.loaded = False
        self._newest: datetime | None = None

    def get(self, serial_hex: str) -> Revoked | None:
        return self.revoked.get(serial_hex)

    def add(self, rows: Iterable[tuple[str, datetime, int]]) -> None:
        """Record (serial, revoked_at, reason) rows, from the database or from this process."""
        for serial, revoked_at, reason in rows:
            self.revoked[serial] = Revoked(revoked_at.replace(microsecond=0), reason)
            if self._newest is None or revoked_at > self._newest:
                self._newest = revoked_at

    async def sync(self, session: AsyncSession, count: int) -> bool:
        """Catch up with ``count`` rows in the database; True when anything was read."""
        if self.loaded and len(self.revoked) >= count:
            return False
        columns = select(
            CertificateRevocation.serial_number,
            CertificateRevocation.revoked_at,
            CertificateRevocation.reason,
        ).where(CertificateRevocation.issuer_id == self.issuer_id)
        if self.loaded and self._newest is not None:
            recent = columns.where(
                CertificateRevocation.revoked_at >= self._newest - _LATE_COMMIT_MARGIN
            )
            self.add(await session.execute(recent))
            if len(self.revoked) >= count:
                return True
        self.revoked = {}
        self._newest = None
        self.add(await session.execute(columns))
        self.loaded = True
        return True
