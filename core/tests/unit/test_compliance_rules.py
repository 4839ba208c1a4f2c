"""The compliance rule types: config validation on write and evaluation against a certificate."""

from datetime import UTC, datetime, timedelta

import pytest

from certctl.domain.compliance.rules import RULE_CONFIGS, CertificateFacts, evaluate, parse_config
from certctl.errors import BadRequest

NOW = datetime(2030, 1, 1, tzinfo=UTC)
DAY = 86400


def facts(**overrides) -> CertificateFacts:
    values = {
        "issuer_id": "iss-a",
        "sans": ("www.example.test", "10.0.0.1"),
        "tags": {"owner": "ops"},
        "environment": "production",
        "expires_at": NOW + timedelta(days=60),
        "lifetime_seconds": 90 * DAY,
    }
    values.update(overrides)
    return CertificateFacts(**values)


def check(rule_type, config, **overrides):
    return evaluate(rule_type, parse_config(rule_type, config), facts(**overrides), NOW)


def test_every_reference_type_has_a_config():
    assert set(RULE_CONFIGS) == {
        "AllowedIssuers",
        "AllowedDomains",
        "RequiredMetadata",
        "AllowedEnvironments",
        "RenewalLeadTime",
        "CertificateLifetime",
    }


def test_allowed_issuers():
    assert check("AllowedIssuers", {"allowed_issuer_ids": ["iss-a"]}) is None
    assert "iss-b" in check("AllowedIssuers", {"allowed_issuer_ids": ["iss-a"]}, issuer_id="iss-b")
    assert check("AllowedIssuers", {}, issuer_id="iss-b") is None  # empty list: any issuer
    assert check("AllowedIssuers", {}, issuer_id=None) == "the certificate has no issuer"


def test_allowed_domains_uses_profile_patterns():
    config = {"allowed_domains": ["*.example.test", "10.0.0.0/8"]}
    assert check("AllowedDomains", config) is None
    message = check("AllowedDomains", config, sans=("www.example.test", "a.b.example.test"))
    assert "a.b.example.test" in message and "'www.example.test'" not in message
    assert (
        check(
            "AllowedDomains",
            {"allowed_domains": ["**.example.test", "10.0.0.0/8"]},
            sans=("a.b.example.test",),
        )
        is None
    )
    assert "no subject alternative names" in check("AllowedDomains", config, sans=())
    assert parse_config("AllowedDomains", {"allowed_domains": ["*.EXAMPLE.test"]}) == {
        "allowed_domains": ["*.example.test"]
    }


def test_required_metadata_treats_empty_values_as_missing():
    config = {"required_keys": ["owner", "team"]}
    assert "['team']" in check("RequiredMetadata", config)
    assert check("RequiredMetadata", config, tags={"owner": "a", "team": "b"}) is None
    assert "['owner', 'team']" in check("RequiredMetadata", config, tags={"owner": ""})


def test_allowed_environments():
    config = {"allowed": ["production", "staging"]}
    assert check("AllowedEnvironments", config) is None
    assert "'lab'" in check("AllowedEnvironments", config, environment="lab")
    assert check("AllowedEnvironments", config, environment="") == (
        "the certificate has no environment"
    )


def test_renewal_lead_time_fires_only_inside_the_window():
    config = {"lead_time_days": 30}
    assert check("RenewalLeadTime", config) is None  # 60 days left
    assert "29.0 days" in check("RenewalLeadTime", config, expires_at=NOW + timedelta(days=29))
    assert check("RenewalLeadTime", config, expires_at=NOW - timedelta(days=1)) is None
    assert check("RenewalLeadTime", config, expires_at=None) is None
    assert parse_config("RenewalLeadTime", {}) == {"lead_time_days": 30}


def test_certificate_lifetime():
    assert check("CertificateLifetime", {"max_days": 90}) is None
    assert "91.0 days exceeds 90" in check(
        "CertificateLifetime", {"max_days": 90}, lifetime_seconds=91 * DAY
    )
    assert check("CertificateLifetime", {"max_days": 1}, lifetime_seconds=None) is None


@pytest.mark.parametrize(
    ("rule_type", "config"),
    [
        ("AllowedIssuers", {"allowed_issuer_ids": "iss-a"}),
        ("AllowedDomains", {"allowed_domains": ["*"]}),
        ("RequiredMetadata", {"required_keys": [""]}),
        ("AllowedEnvironments", {"allowed": []}),
        ("RenewalLeadTime", {"lead_time_days": -1}),
        ("CertificateLifetime", {"max_days": 90, "extra": True}),
        ("Unknown", {}),
    ],
)
def test_malformed_configs_are_refused(rule_type, config):
    with pytest.raises(BadRequest):
        parse_config(rule_type, config)
