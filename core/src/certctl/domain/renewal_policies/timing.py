"""When a certificate renews: the policy's window or fraction, spread by deterministic jitter."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from certctl.db.models import CertificateProfile, ManagedCertificate, RenewalPolicy

__all__ = ["jitter_fraction", "renew_before_days_of", "renewal_time"]


def renew_before_days_of(
    cert: ManagedCertificate, profile: CertificateProfile | None
) -> int | None:
    """A day count that overrides the policy: the certificate's own, else its profile's when
    the certificate has no policy of its own (the most specific setting wins)."""
    if cert.renew_before_days:
        return cert.renew_before_days
    if profile is not None and not cert.renewal_policy_id:
        return profile.renew_before_days
    return None


def jitter_fraction(certificate_id: str, version: int) -> float:
    """A stable number in [0, 1) per certificate version: recomputing gives the same time,
    and a fleet issued in one burst spreads evenly instead of renewing in one burst again."""
    digest = hashlib.sha256(f"{certificate_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def renewal_time(
    *,
    certificate_id: str,
    version: int,
    not_before: datetime,
    not_after: datetime,
    policy: RenewalPolicy | None,
    renew_before_days: int | None,
    default_jitter_percent: int,
) -> datetime | None:
    """The renewal time of one issued version; None when the policy disables auto-renewal.

    The base time is ``renew_before_days`` before expiry if the certificate (or, without a
    policy of its own, its profile) sets it, else the policy's ``renew_fraction`` of the
    lifetime or ``renewal_window_days`` before expiry, else two thirds of the lifetime. A day
    count never moves renewal before half the lifetime (a 30-day window on a 7-day
    certificate would otherwise renew it at once, forever). Jitter then moves the time later
    by up to ``jitter_percent`` of the remaining window: it stays inside the window and never
    passes expiry.
    """
    if policy is not None and not policy.auto_renew:
        return None
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return not_before
    days = renew_before_days or (
        policy.renewal_window_days if policy and not policy.renew_fraction else None
    )
    if days:
        base = max(not_before + lifetime / 2, not_after - timedelta(days=days))
    elif policy is not None and policy.renew_fraction:
        base = not_before + lifetime * policy.renew_fraction
    else:
        base = not_before + lifetime * 2 / 3
    percent = policy.jitter_percent if policy is not None else default_jitter_percent
    window = not_after - base
    shift = window * (percent / 100) * jitter_fraction(certificate_id, version)
    return min(base + shift, not_after)
