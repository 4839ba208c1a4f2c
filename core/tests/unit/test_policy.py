"""check_issuance: the one policy gate every issuance path goes through."""

import pytest

from certctl.db.models import CertificateProfile
from certctl.domain.policy import KEY_ALGORITHMS, IssuancePolicyInput, check_issuance
from certctl.errors import PolicyViolation
from certctl.lib.names import classify_sans
from certctl_sdk.models import KeyType

DAY = 86400


def profile(**overrides) -> CertificateProfile:
    values = {
        "id": "prof-test",
        "name": "web",
        "allowed_key_algorithms": [
            {"algorithm": "ECDSA", "min_size": 256},
            {"algorithm": "RSA", "min_size": 3072},
        ],
        "max_ttl_seconds": 90 * DAY,
        "allowed_san_patterns": ["*.example.com", "example.com", "10.0.0.0/8"],
        "allowed_ekus": ["serverAuth", "clientAuth"],
        "must_staple": False,
        "enabled": True,
    }
    values.update(overrides)
    return CertificateProfile(**values)


def request(
    *,
    key_type: KeyType = KeyType.ECDSA_P256,
    names: tuple[str, ...] = ("www.example.com",),
    days: int = 30,
    ekus: tuple[str, ...] = ("serverAuth",),
) -> IssuancePolicyInput:
    return IssuancePolicyInput(
        key_type=key_type, sans=classify_sans(names), validity_seconds=days * DAY, ekus=ekus
    )


def violations(prof, req) -> list[str]:
    with pytest.raises(PolicyViolation) as info:
        check_issuance(prof, req)
    assert info.value.status == 422
    return info.value.extra["violations"]


def test_no_profile_means_no_limits():
    check_issuance(None, request(key_type=KeyType.RSA_2048, names=("anything.test",), days=3650))


def test_conforming_request_passes():
    check_issuance(profile(), request())
    check_issuance(profile(), request(key_type=KeyType.RSA_4096, names=("example.com", "10.2.3.4")))
    check_issuance(profile(), request(days=90, ekus=("serverAuth", "clientAuth")))


def test_every_key_type_has_an_algorithm_and_size():
    assert set(KEY_ALGORITHMS) == set(KeyType)


@pytest.mark.parametrize(
    ("key_type", "allowed"),
    [
        (KeyType.ECDSA_P256, True),
        (KeyType.ECDSA_P384, True),
        (KeyType.RSA_2048, False),  # below the profile's RSA minimum
        (KeyType.RSA_3072, True),
        (KeyType.RSA_4096, True),
        (KeyType.ED25519, False),  # not listed at all
    ],
)
def test_key_algorithm_rules(key_type, allowed):
    if allowed:
        check_issuance(profile(), request(key_type=key_type))
    else:
        [problem] = violations(profile(), request(key_type=key_type))
        assert f"key type {key_type}" in problem
        assert "ECDSA>=256" in problem
        assert "RSA>=3072" in problem


def test_ecdsa_minimum_size_excludes_p256():
    prof = profile(allowed_key_algorithms=[{"algorithm": "ECDSA", "min_size": 384}])
    violations(prof, request(key_type=KeyType.ECDSA_P256))
    check_issuance(prof, request(key_type=KeyType.ECDSA_P384))


def test_empty_key_rules_allow_every_key_type():
    prof = profile(allowed_key_algorithms=[])
    for key_type in KeyType:
        check_issuance(prof, request(key_type=key_type))


def test_validity_above_the_maximum():
    [problem] = violations(profile(), request(days=91))
    assert f"validity {91 * DAY}s exceeds the profile maximum {90 * DAY}s" == problem
    check_issuance(profile(max_ttl_seconds=0), request(days=3650))


def test_names_outside_the_patterns_are_each_reported():
    problems = violations(
        profile(), request(names=("www.example.com", "a.b.example.com", "evil.test", "11.0.0.1"))
    )
    assert problems == [
        "name 'a.b.example.com' matches none of the profile's SAN patterns",
        "name 'evil.test' matches none of the profile's SAN patterns",
        "name '11.0.0.1' matches none of the profile's SAN patterns",
    ]


def test_no_patterns_allow_any_name():
    check_issuance(profile(allowed_san_patterns=[]), request(names=("anything.test",)))


def test_extended_key_usages_outside_the_profile():
    [problem] = violations(profile(), request(ekus=("serverAuth", "codeSigning")))
    assert "['codeSigning']" in problem
    check_issuance(profile(allowed_ekus=[]), request(ekus=("codeSigning",)))


def test_disabled_profile_refuses_everything():
    [problem] = violations(profile(enabled=False), request())
    assert problem == "profile 'web' is disabled"


def test_all_problems_are_reported_at_once():
    problems = violations(
        profile(enabled=False),
        request(key_type=KeyType.ED25519, names=("evil.test",), days=365, ekus=("codeSigning",)),
    )
    assert len(problems) == 5
    with pytest.raises(PolicyViolation) as info:
        check_issuance(profile(enabled=False), request(names=("evil.test",)))
    assert info.value.detail == "; ".join(info.value.extra["violations"])


def test_required_patterns_each_need_a_matching_name():
    prof = profile(
        allowed_san_patterns=[],
        required_san_patterns=["*.corp.example", "spiffe://corp/*"],
    )
    check_issuance(prof, request(names=("web.corp.example", "spiffe://corp/ns/web", "x.test")))
    problems = violations(prof, request(names=("web.corp.example", "x.test")))
    assert problems == ["no name matches the profile's required SAN pattern 'spiffe://corp/*'"]
    problems = violations(prof, request(names=("x.test",)))
    assert len(problems) == 2


def test_required_patterns_match_by_type():
    # A pattern is only satisfied by a name of its own type: DNS names never meet a CIDR.
    prof = profile(allowed_san_patterns=[], required_san_patterns=["10.0.0.0/8"])
    violations(prof, request(names=("www.example.com",)))
    check_issuance(prof, request(names=("www.example.com", "10.1.2.3")))


def test_required_and_allowed_patterns_combine():
    prof = profile(required_san_patterns=["example.com"])
    [problem] = violations(prof, request(names=("www.example.com",)))
    assert "required SAN pattern 'example.com'" in problem
    check_issuance(prof, request(names=("www.example.com", "example.com")))


def test_profiles_without_required_patterns_require_nothing():
    check_issuance(profile(required_san_patterns=[]), request())
    check_issuance(profile(required_san_patterns=None), request())
