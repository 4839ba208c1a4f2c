"""Orders and authorizations (RFC 8555 §7.1.3 to §7.1.6, §7.4, §7.5).

An order's identifiers are checked against the profile's SAN policy before anything is
stored. Under ``challenge`` each identifier gets an authorization with the challenges that
can prove it (wildcards: dns-01 only; IP addresses: http-01 and tls-alpn-01, RFC 8738);
under ``trust_authenticated`` (EAB-enrolled accounts only) authorizations start valid.

Order state is derived when it is read: a ``pending`` order becomes ``ready`` once every
authorization is valid, and a ``processing`` one follows its issuance job, so any replica
answers the same without a background step.
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder, Job
from certctl.domain.acme import ari, limits
from certctl.domain.acme.accounts import account_actor
from certctl.domain.acme.directory import Directory, auth_mode
from certctl.domain.acme.problems import ACME_ERROR, AcmeProblem
from certctl.domain.audit.service import record
from certctl.domain.policy import name_problems
from certctl.errors import BadRequest
from certctl.lib.names import classify_sans, validate_dns_name

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "MAX_IDENTIFIERS",
    "authz_object",
    "challenge_object",
    "create_order",
    "normalize_identifiers",
    "order_authz_ids",
    "order_object",
    "refresh_order",
]

MAX_IDENTIFIERS = 100
OPEN_ORDER_STATUSES = ("pending", "ready", "processing")


def _identifier(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or set(raw) != {"type", "value"}:
        raise AcmeProblem("malformed", "an identifier is an object with type and value")
    kind, value = raw["type"], raw["value"]
    if not isinstance(kind, str) or not isinstance(value, str):
        raise AcmeProblem("malformed", "identifier type and value must be strings")
    if kind == "ip":
        try:
            return {"type": "ip", "value": str(ipaddress.ip_address(value))}
        except ValueError:
            raise AcmeProblem("rejectedIdentifier", f"not an IP address: {value[:80]!r}") from None
    if kind != "dns":
        raise AcmeProblem("unsupportedIdentifier", f"identifier type {kind[:20]!r}")
    try:
        name = validate_dns_name(value)
    except BadRequest as exc:
        raise AcmeProblem("rejectedIdentifier", exc.detail) from None
    if name != value.lower().rstrip(".") or "*" in name.removeprefix("*."):
        raise AcmeProblem("rejectedIdentifier", f"not a DNS name: {value[:80]!r}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return {"type": "dns", "value": name}
    raise AcmeProblem("malformed", f"{value!r} is an IP address: use type ip")


def normalize_identifiers(raw: Any) -> list[dict[str, str]]:
    """Validated, lower-cased, unique and sorted identifiers of a new-order payload."""
    if not isinstance(raw, list) or not raw:
        raise AcmeProblem("malformed", "identifiers must be a non-empty array")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers")
    unique = {(i["type"], i["value"]) for i in map(_identifier, raw)}
    return [{"type": t, "value": v} for t, v in sorted(unique)]


def _challenge_types(identifier: dict[str, str]) -> tuple[str, ...]:
    if identifier["type"] == "ip":
        return ("http-01", "tls-alpn-01")
    if identifier["value"].startswith("*."):
        return ("dns-01",)
    return ("http-01", "dns-01", "tls-alpn-01")


async def create_order(
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    account: AcmeAccount,
    payload: dict[str, Any],
    *,
    client_ip: str,
) -> AcmeOrder:
    """Check and store a new order with its authorizations and challenges; commits."""
    settings = runtime.settings
    identifiers = normalize_identifiers(payload.get("identifiers"))
    if payload.get("notBefore") is not None or payload.get("notAfter") is not None:
        raise AcmeProblem(
            "malformed", "notBefore/notAfter are not supported: the profile sets the lifetime"
        )
    profile = directory.profile
    problems: list[dict[str, Any]] = []
    refused: list[str] = []
    for item in identifiers:
        found = name_problems(profile, classify_sans([item["value"]]))
        if found:
            refused.append("; ".join(found))
            problems.append(
                {
                    "type": ACME_ERROR + "rejectedIdentifier",
                    "detail": "; ".join(found),
                    "identifier": item,
                }
            )
    everything = name_problems(profile, classify_sans([i["value"] for i in identifiers]))
    if problems or everything:
        raise AcmeProblem(
            "rejectedIdentifier",
            "the profile's policy does not allow these identifiers: "
            + "; ".join(everything or refused),
            subproblems=problems,
        )
    now = utcnow()
    await limits.check_new_order(
        session, settings, account_id=account.id, client_ip=client_ip, now=now
    )
    replaces = payload.get("replaces")
    replaced_certificate: str | None = None
    if replaces is not None:
        if not isinstance(replaces, str):
            raise AcmeProblem("malformed", "replaces must be an ARI certificate identifier")
        replaced_certificate = await ari.replaced_certificate(
            session, account_id=account.id, profile_id=profile.id, cert_id=replaces
        )
    trusted = auth_mode(profile, settings) == "trust_authenticated"
    order = AcmeOrder(
        id=new_id("ord"),
        account_id=account.id,
        profile_id=profile.id,
        status="ready" if trusted else "pending",
        identifiers=identifiers,
        expires_at=now + timedelta(seconds=settings.acme_order_ttl_seconds),
        replaces=replaces,
        client_ip=client_ip,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    await session.flush()
    authz_expiry = min(order.expires_at, now + timedelta(seconds=settings.acme_authz_ttl_seconds))
    for item in identifiers:
        wildcard = item["value"].startswith("*.")
        authz = AcmeAuthorization(
            id=new_id("authz"),
            order_id=order.id,
            account_id=account.id,
            identifier_type=item["type"],
            identifier_value=item["value"].removeprefix("*."),
            wildcard=wildcard,
            status="valid" if trusted else "pending",
            expires_at=authz_expiry,
            created_at=now,
        )
        session.add(authz)
        await session.flush()
        for kind in _challenge_types(item):
            session.add(
                AcmeChallenge(
                    id=new_id("chall"),
                    authz_id=authz.id,
                    type=kind,
                    token=secrets.token_urlsafe(32),
                    status="valid" if trusted else "pending",
                    validated_at=now if trusted else None,
                    updated_at=now,
                )
            )
            if trusted:
                break  # one challenge, already valid, records how the authorization was met
    record(
        session,
        account_actor(account),
        "acme.order.create",
        resource_type="acme_order",
        resource_id=order.id,
        category="cert_lifecycle",
        details={
            "profile_id": profile.id,
            "identifiers": [i["value"] for i in identifiers],
            "mode": "trust_authenticated" if trusted else "challenge",
            "replaces_certificate": replaced_certificate,
            "client_ip": client_ip,
        },
    )
    await session.commit()
    return order


async def order_authz_ids(session: AsyncSession, order_id: str) -> list[str]:
    """The order's authorization ids in identifier order."""
    rows = await session.execute(
        select(AcmeAuthorization.id)
        .where(AcmeAuthorization.order_id == order_id)
        .order_by(AcmeAuthorization.identifier_type, AcmeAuthorization.identifier_value)
    )
    return [row[0] for row in rows]


async def refresh_order(session: AsyncSession, order: AcmeOrder, now: datetime) -> AcmeOrder:
    """Bring a stored order's status up to date (authorizations, expiry, its job); commits."""
    status, error, version_id = order.status, order.error, order.version_id
    if status in ("pending", "ready") and order.expires_at <= now:
        status = "invalid"
        error = {"type": ACME_ERROR + "malformed", "detail": "the order expired"}
    elif status == "pending":
        states = set(
            await session.scalars(
                select(AcmeAuthorization.status).where(AcmeAuthorization.order_id == order.id)
            )
        )
        if states == {"valid"}:
            status = "ready"
        elif states & {"invalid", "deactivated", "expired", "revoked"}:
            status = "invalid"
            error = {
                "type": ACME_ERROR + "unauthorized",
                "detail": "an authorization of the order failed",
            }
    elif status == "processing" and order.job_id:
        job = await session.get(Job, order.job_id)
        if job is None or job.status in ("failed", "cancelled"):
            status = "invalid"
            reason = (job.last_error if job else None) or "the issuance job was removed"
            error = {
                "type": ACME_ERROR + "serverInternal",
                "detail": f"the issuer did not sign: {reason}"[:1000],
            }
        elif job.status == "completed":
            version_id = str(job.result.get("version_id") or "") or None
            status = "valid" if version_id else "invalid"
            if status == "valid" and order.replaces:
                await ari.replacement_done(
                    session, profile_id=order.profile_id, cert_id=order.replaces
                )
    if (status, error, version_id) != (order.status, order.error, order.version_id):
        await session.execute(
            update(AcmeOrder)
            .where(AcmeOrder.id == order.id, AcmeOrder.status == order.status)
            .values(status=status, error=error, version_id=version_id, updated_at=now)
        )
        await session.commit()
        await session.refresh(order)
    return order


def order_object(directory: Directory, order: AcmeOrder, authz_ids: list[str]) -> dict[str, Any]:
    """The order resource (RFC 8555 §7.1.3)."""
    body: dict[str, Any] = {
        "status": order.status,
        "expires": _timestamp(order.expires_at),
        "identifiers": list(order.identifiers),
        "authorizations": [directory.url("authz", a) for a in authz_ids],
        "finalize": directory.url("order", order.id, "finalize"),
    }
    if order.replaces:
        body["replaces"] = order.replaces
    if order.error:
        body["error"] = order.error
    if order.status == "valid" and order.version_id:
        body["certificate"] = directory.url("cert", order.version_id)
    return body


def authz_object(
    directory: Directory, authz: AcmeAuthorization, challenges: list[AcmeChallenge]
) -> dict[str, Any]:
    """The authorization resource (RFC 8555 §7.1.4); wildcards are named without ``*.``."""
    body: dict[str, Any] = {
        "identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
        "status": authz.status,
        "expires": _timestamp(authz.expires_at),
        "challenges": [challenge_object(directory, c) for c in challenges],
    }
    if authz.wildcard:
        body["wildcard"] = True
    return body


def challenge_object(directory: Directory, challenge: AcmeChallenge) -> dict[str, Any]:
    """The challenge resource (RFC 8555 §7.1.5, §8)."""
    body: dict[str, Any] = {
        "type": challenge.type,
        "url": directory.url("challenge", challenge.id),
        "status": challenge.status,
        "token": challenge.token,
    }
    if challenge.validated_at is not None:
        body["validated"] = _timestamp(challenge.validated_at)
    if challenge.error:
        body["error"] = challenge.error
    return body


def _timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
