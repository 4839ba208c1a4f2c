"""The six compliance rule types: typed configs (validated on write) and their evaluation.

A rule never blocks a certificate; it reports. :func:`evaluate` answers one rule against one
certificate's facts with a message, or None when the certificate complies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from certctl.errors import BadRequest
from certctl.lib.names import name_matches, validate_san_pattern

__all__ = [
    "RULE_CONFIGS",
    "CertificateFacts",
    "RuleType",
    "Severity",
    "evaluate",
    "parse_config",
]

RuleType = Literal[
    "AllowedIssuers",
    "AllowedDomains",
    "RequiredMetadata",
    "AllowedEnvironments",
    "RenewalLeadTime",
    "CertificateLifetime",
]
Severity = Literal["Warning", "Error", "Critical"]

_DAY = 86400


class _Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class AllowedIssuersConfig(_Config):
    """Certificates come from one of these issuers (empty: any issuer, but one is required)."""

    allowed_issuer_ids: list[str] = msgspec.field(default_factory=list)


class AllowedDomainsConfig(_Config):
    """Every SAN matches one of these profile-style patterns (``*.x`` is one label, ``**.x``
    any depth, CIDRs for addresses)."""

    allowed_domains: Annotated[list[str], msgspec.Meta(min_length=1)]


class RequiredMetadataConfig(_Config):
    """These tag keys are present with a non-empty value."""

    required_keys: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)
    ]


class AllowedEnvironmentsConfig(_Config):
    """The certificate's environment is one of these."""

    allowed: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]


class RenewalLeadTimeConfig(_Config):
    """A certificate this close to expiry should have been renewed already."""

    lead_time_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30


class CertificateLifetimeConfig(_Config):
    """Certificates live at most this many days."""

    max_days: Annotated[int, msgspec.Meta(ge=1, le=36500)]


RULE_CONFIGS: dict[str, type[_Config]] = {
    "AllowedIssuers": AllowedIssuersConfig,
    "AllowedDomains": AllowedDomainsConfig,
    "RequiredMetadata": RequiredMetadataConfig,
    "AllowedEnvironments": AllowedEnvironmentsConfig,
    "RenewalLeadTime": RenewalLeadTimeConfig,
    "CertificateLifetime": CertificateLifetimeConfig,
}


def parse_config(rule_type: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate ``raw`` as the config of ``rule_type``; returns it normalised (defaults filled).

    Raises BadRequest naming the offending field, so a malformed rule is refused on write
    instead of being skipped at evaluation time.
    """
    config_type = RULE_CONFIGS.get(rule_type)
    if config_type is None:
        raise BadRequest(f"unknown rule type {rule_type!r}")
    try:
        config = msgspec.convert(raw, config_type)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid {rule_type} config: {exc}") from None
    if isinstance(config, AllowedDomainsConfig):
        config.allowed_domains = [validate_san_pattern(p) for p in config.allowed_domains]
    result: dict[str, Any] = msgspec.to_builtins(config)
    return result


class CertificateFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules look at, for one certificate."""

    issuer_id: str | None
    sans: tuple[str, ...]
    tags: dict[str, str]
    environment: str
    expires_at: datetime | None
    lifetime_seconds: int | None
    """The current version's ``not_after - not_before``, else the requested validity."""


def evaluate(
    rule_type: str, config: dict[str, Any], facts: CertificateFacts, now: datetime
) -> str | None:
    """The violation message, or None when ``facts`` comply with the rule."""
    if rule_type == "AllowedIssuers":
        allowed = config.get("allowed_issuer_ids") or []
        if not facts.issuer_id:
            return "the certificate has no issuer"
        if allowed and facts.issuer_id not in allowed:
            return f"issuer {facts.issuer_id} is not one of the allowed issuers"
        return None
    if rule_type == "AllowedDomains":
        patterns = config.get("allowed_domains") or []
        if not facts.sans:
            return "the certificate has no subject alternative names"
        outside = [n for n in facts.sans if not any(name_matches(n, p) for p in patterns)]
        return f"names outside the allowed domains: {outside}" if outside else None
    if rule_type == "RequiredMetadata":
        missing = [k for k in config.get("required_keys") or [] if not facts.tags.get(k)]
        return f"missing required tags: {missing}" if missing else None
    if rule_type == "AllowedEnvironments":
        allowed = config.get("allowed") or []
        if not facts.environment:
            return "the certificate has no environment"
        if facts.environment not in allowed:
            return f"environment {facts.environment!r} is not one of {allowed}"
        return None
    if rule_type == "RenewalLeadTime":
        days = int(config.get("lead_time_days", 30))
        if facts.expires_at is None:
            return None
        left = (facts.expires_at - now).total_seconds()
        if 0 < left < days * _DAY:
            return f"expires in {left / _DAY:.1f} days, inside the {days}-day renewal lead time"
        return None
    if rule_type == "CertificateLifetime":
        max_days = int(config["max_days"])
        if facts.lifetime_seconds is None or facts.lifetime_seconds <= max_days * _DAY:
            return None
        return f"lifetime {facts.lifetime_seconds / _DAY:.1f} days exceeds {max_days} days"
    return None
