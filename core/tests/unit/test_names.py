"""SAN validation and classification, and profile SAN pattern matching."""

import pytest

from certctl.errors import BadRequest
from certctl.lib.names import classify_sans, name_matches, validate_dns_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.COM", "example.com"),
        ("www.example.com.", "www.example.com"),
        ("  api.example.com ", "api.example.com"),
        ("*.example.com", "*.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("localhost", "localhost"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_valid_dns_names(given, expected):
    assert validate_dns_name(given) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "-lead.example.com",
        "trail-.example.com",
        "double..dot.example",
        "under_score.example.com",
        "sp ace.example.com",
        "a" * 64 + ".example",
        ("a" * 60 + ".") * 5,
        "*.com",
        "*",
        "www.*.example.com",
        "**.example.com",
        "f*o.example.com",
        "b\u00fccher.example",
    ],
)
def test_invalid_dns_names(name):
    with pytest.raises(BadRequest, match="invalid DNS name"):
        validate_dns_name(name)


def test_classify_sorts_and_deduplicates():
    sans = classify_sans(
        [
            "www.example.com",
            "WWW.example.com.",
            "10.0.0.1",
            "2001:db8::1",
            "2001:0db8:0:0:0:0:0:1",
            "ops@example.com",
            "spiffe://example.com/ns/prod/sa/web",
            "https://example.com/",
        ]
    )
    assert sans.dns == ("www.example.com",)
    assert sans.ip == ("10.0.0.1", "2001:db8::1")
    assert sans.email == ("ops@example.com",)
    assert sans.uri == ("spiffe://example.com/ns/prod/sa/web", "https://example.com/")
    assert sans.all() == (
        "www.example.com",
        "10.0.0.1",
        "2001:db8::1",
        "ops@example.com",
        "spiffe://example.com/ns/prod/sa/web",
        "https://example.com/",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty subject alternative name"),
        ("   ", "empty subject alternative name"),
        ("a@b@c", "invalid e-mail name"),
        ("@example.com", "invalid e-mail name"),
        ("://nothing", "invalid URI name"),
        ("bad_name.example.com", "invalid DNS name"),
    ],
)
def test_classify_rejects_bad_names(value, message):
    with pytest.raises(BadRequest, match=message):
        classify_sans(["ok.example.com", value])


@pytest.mark.parametrize(
    ("name", "pattern", "matches"),
    [
        # exact
        ("example.com", "example.com", True),
        ("EXAMPLE.com", "example.COM", True),
        ("www.example.com", "example.com", False),
        # one label
        ("www.example.com", "*.example.com", True),
        ("*.example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", False),
        ("example.com", "*.example.com", False),
        ("wwwexample.com", "*.example.com", False),
        ("www.example.com.evil.net", "*.example.com", False),
        # any depth
        ("a.example.com", "**.example.com", True),
        ("a.b.c.example.com", "**.example.com", True),
        ("example.com", "**.example.com", False),
        ("evilexample.com", "**.example.com", False),
        # CIDR and single addresses
        ("10.1.2.3", "10.0.0.0/8", True),
        ("11.0.0.1", "10.0.0.0/8", False),
        ("10.0.0.7", "10.0.0.7", True),
        ("10.0.0.8", "10.0.0.7", False),
        ("2001:db8::5", "2001:db8::/32", True),
        ("2001:db9::5", "2001:db8::/32", False),
        ("example.com", "10.0.0.0/8", False),
        # e-mail
        ("ops@example.com", "*@example.com", True),
        ("ops@mail.example.com", "*@example.com", False),
        ("ops@evil-example.com", "*@example.com", False),
        # URIs
        ("spiffe://example.com/ns/prod", "spiffe://example.com/*", True),
        ("spiffe://example.org/ns/prod", "spiffe://example.com/*", False),
        ("https://example.com/x", "https://example.com/x", True),
        ("https://example.com/xy", "https://example.com/x", False),
    ],
)
def test_name_matches(name, pattern, matches):
    assert name_matches(name, pattern) is matches
