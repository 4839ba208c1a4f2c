"""Creating and validating certificate profiles."""

from __future__ import annotations

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import CertificateProfile
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.profiles.schemas import KeyAlgorithmRule, ProfileIn
from certctl.domain.renewal_policies.service import check_policy_ids
from certctl.errors import BadRequest, Conflict
from certctl.lib.names import validate_san_pattern
from certctl_sdk.models import ExtendedKeyUsage

__all__ = ["create_profile", "validate_profile_fields"]

_EKUS = {e.value for e in ExtendedKeyUsage}
_MIN_SIZES = {"RSA": 2048, "ECDSA": 256, "Ed25519": 0}


def validate_profile_fields(
    rules: list[KeyAlgorithmRule] | None, ekus: list[str] | None, patterns: list[str] | None
) -> None:
    """Reject key rules below the reference's floors, unknown EKUs and malformed patterns."""
    for rule in rules or []:
        floor = _MIN_SIZES[rule.algorithm]
        if rule.min_size and rule.min_size < floor:
            raise BadRequest(f"{rule.algorithm} min_size must be at least {floor}")
    unknown = sorted(set(ekus or []) - _EKUS)
    if unknown:
        raise BadRequest(f"unknown extended key usages: {unknown}")
    for pattern in patterns or []:
        validate_san_pattern(pattern)


async def create_profile(
    session: AsyncSession, data: ProfileIn, actor: Actor
) -> CertificateProfile:
    """Validate and add a profile (the caller commits)."""
    validate_profile_fields(
        data.allowed_key_algorithms, data.allowed_ekus, data.allowed_san_patterns
    )
    if data.renewal_policy_id:
        await check_policy_ids(session, {data.renewal_policy_id})
    now = utcnow()
    row = CertificateProfile(
        id=new_id("prof"),
        name=data.name,
        description=data.description,
        allowed_key_algorithms=msgspec.to_builtins(data.allowed_key_algorithms),
        max_ttl_seconds=data.max_ttl_seconds,
        allowed_san_patterns=list(data.allowed_san_patterns),
        allowed_ekus=list(data.allowed_ekus),
        must_staple=data.must_staple,
        renew_before_days=data.renew_before_days,
        renewal_policy_id=data.renewal_policy_id,
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a profile named {data.name!r} already exists") from None
    record(
        session,
        actor,
        "profile.create",
        resource_type="profile",
        resource_id=row.id,
        details={"name": row.name},
    )
    return row
