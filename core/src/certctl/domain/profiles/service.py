"""Creating, validating, changing and deleting certificate profiles."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import CertificateProfile, ConnectorInstance, ManagedCertificate
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.profiles.schemas import KeyAlgorithmRule, ProfileIn, ProfileOut, ProfileUpdate
from certctl.domain.renewal_policies.service import check_policy_ids
from certctl.errors import BadRequest, Conflict
from certctl.lib.names import validate_san_pattern
from certctl_sdk.models import ExtendedKeyUsage

__all__ = [
    "apply_update",
    "changes_of",
    "check_issuer_id",
    "create_profile",
    "delete_profile",
    "edit_needs_approval",
    "profile_out",
    "validate_profile_fields",
    "validate_update",
]

_EKUS = {e.value for e in ExtendedKeyUsage}
_MIN_SIZES = {"RSA": 2048, "ECDSA": 256, "Ed25519": 0}


def profile_out(row: CertificateProfile) -> ProfileOut:
    """The API form of a profile."""
    return ProfileOut(
        id=row.id,
        name=row.name,
        description=row.description,
        allowed_key_algorithms=msgspec.convert(row.allowed_key_algorithms, list[KeyAlgorithmRule]),
        max_ttl_seconds=row.max_ttl_seconds,
        allowed_san_patterns=list(row.allowed_san_patterns),
        allowed_ekus=list(row.allowed_ekus),
        must_staple=row.must_staple,
        renew_before_days=row.renew_before_days,
        renewal_policy_id=row.renewal_policy_id,
        enabled=row.enabled,
        required_san_patterns=list(row.required_san_patterns or []),
        requires_approval=row.requires_approval,
        issuer_id=row.issuer_id,
        acme_auth_mode=row.acme_auth_mode,  # type: ignore[arg-type]
        acme_eab_required=row.acme_eab_required,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def check_issuer_id(session: AsyncSession, issuer_id: str) -> None:
    """A profile may only name an existing issuer connector."""
    found = await session.scalar(
        select(ConnectorInstance.id).where(
            ConnectorInstance.id == issuer_id, ConnectorInstance.family == "issuer"
        )
    )
    if found is None:
        raise BadRequest(f"unknown issuer_id {issuer_id!r}")


def validate_profile_fields(
    rules: list[KeyAlgorithmRule] | None,
    ekus: list[str] | None,
    patterns: list[str] | None,
    required_patterns: list[str] | None = None,
) -> None:
    """Reject key rules below the reference's floors, unknown EKUs and malformed patterns."""
    for rule in rules or []:
        floor = _MIN_SIZES[rule.algorithm]
        if rule.min_size and rule.min_size < floor:
            raise BadRequest(f"{rule.algorithm} min_size must be at least {floor}")
    unknown = sorted(set(ekus or []) - _EKUS)
    if unknown:
        raise BadRequest(f"unknown extended key usages: {unknown}")
    for pattern in [*(patterns or []), *(required_patterns or [])]:
        validate_san_pattern(pattern)


async def create_profile(
    session: AsyncSession, data: ProfileIn, actor: Actor
) -> CertificateProfile:
    """Validate and add a profile (the caller commits)."""
    validate_profile_fields(
        data.allowed_key_algorithms,
        data.allowed_ekus,
        data.allowed_san_patterns,
        data.required_san_patterns,
    )
    if data.renewal_policy_id:
        await check_policy_ids(session, {data.renewal_policy_id})
    if data.issuer_id:
        await check_issuer_id(session, data.issuer_id)
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
        required_san_patterns=list(data.required_san_patterns),
        requires_approval=data.requires_approval,
        issuer_id=data.issuer_id,
        acme_auth_mode=data.acme_auth_mode,
        acme_eab_required=data.acme_eab_required,
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


def changes_of(data: ProfileUpdate) -> dict[str, Any]:
    """The fields an update sets, as JSON-ready values (what an approval request stores)."""
    return {
        f: msgspec.to_builtins(getattr(data, f))
        for f in data.__struct_fields__
        if getattr(data, f) is not None
    }


def validate_update(data: ProfileUpdate) -> None:
    """Check an update's values on their own (uniqueness is checked when it is applied)."""
    validate_profile_fields(
        data.allowed_key_algorithms,
        data.allowed_ekus,
        data.allowed_san_patterns,
        data.required_san_patterns,
    )


def edit_needs_approval(row: CertificateProfile, data: ProfileUpdate | None) -> bool:
    """Edits of an approval-tier profile, and edits that make one, need a second person.

    Gating the switch *off* closes the loophole of turning approval off, editing freely and
    turning it back on; gating the switch *on* keeps such a change reviewable too.
    """
    return row.requires_approval or bool(data is not None and data.requires_approval)


async def apply_update(
    session: AsyncSession,
    row: CertificateProfile,
    data: ProfileUpdate,
    actor: Actor,
    *,
    approval_id: str | None = None,
) -> list[str]:
    """Validate and apply an update (the caller commits); returns the changed field names."""
    validate_update(data)
    changes = changes_of(data)
    if "renewal_policy_id" in changes:
        # "" detaches the profile from its renewal policy.
        await check_policy_ids(session, {data.renewal_policy_id or ""})
        changes["renewal_policy_id"] = data.renewal_policy_id or None
    if "issuer_id" in changes:
        # "" detaches the profile from its issuer.
        if data.issuer_id:
            await check_issuer_id(session, data.issuer_id)
        changes["issuer_id"] = data.issuer_id or None
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a profile named {data.name!r} already exists") from None
    details: dict[str, Any] = {"fields": sorted(changes)}
    if approval_id is not None:
        details["approval_id"] = approval_id
    record(
        session,
        actor,
        "profile.update",
        resource_type="profile",
        resource_id=row.id,
        details=details,
    )
    return sorted(changes)


async def ensure_unused(session: AsyncSession, row: CertificateProfile) -> None:
    """Refuse to delete a profile a certificate still uses."""
    used = await session.scalar(
        select(ManagedCertificate.id).where(ManagedCertificate.profile_id == row.id).limit(1)
    )
    if used:
        raise Conflict(f"profile {row.id} is used by certificate {used}")


async def delete_profile(
    session: AsyncSession,
    row: CertificateProfile,
    actor: Actor,
    *,
    approval_id: str | None = None,
) -> None:
    """Delete a profile no certificate uses (the caller commits)."""
    await ensure_unused(session, row)
    await session.delete(row)
    details: dict[str, Any] = {"name": row.name}
    if approval_id is not None:
        details["approval_id"] = approval_id
    record(
        session,
        actor,
        "profile.delete",
        resource_type="profile",
        resource_id=row.id,
        details=details,
    )
