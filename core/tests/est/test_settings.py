"""CERTCTL_EST_*: refused configurations name their variable; the password is never kept."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from certctl.domain.est.settings import EstSettings
from certctl.settings import Settings, SettingsError

BASE = {"CERTCTL_EST_ENABLED": "true"}


def test_disabled_reads_nothing():
    assert EstSettings.from_env({"CERTCTL_EST_PROFILE_ID": "x"}).enabled is False


def test_full_family(tmp_path):
    from certctl_sdk.testing import TestCA

    bundle = tmp_path / "ca.pem"
    bundle.write_text(TestCA.create().certificate_pem)
    est = EstSettings.from_env({
        **BASE,
        "CERTCTL_EST_PROFILE_ID": "legacy",
        "CERTCTL_EST_PROFILES": "iot-a,b",
        "CERTCTL_EST_PROFILE_IOT_A_PROFILE_ID": "p-iot",
        "CERTCTL_EST_PROFILE_IOT_A_ALLOWED_AUTH_MODES": "mtls, basic",
        "CERTCTL_EST_PROFILE_IOT_A_ENROLLMENT_PASSWORD": "s3cret-passw0rd",
        "CERTCTL_EST_PROFILE_IOT_A_MTLS_ENABLED": "true",
        "CERTCTL_EST_PROFILE_IOT_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": str(bundle),
        "CERTCTL_EST_PROFILE_IOT_A_CHANNEL_BINDING_REQUIRED": "true",
        "CERTCTL_EST_PROFILE_IOT_A_RATE_LIMIT_PER_PRINCIPAL_24H": "3",
        "CERTCTL_EST_PROFILE_IOT_A_SERVERKEYGEN_ENABLED": "yes",
        "CERTCTL_EST_PROFILE_B_PROFILE_ID": "p-b",
    })  # fmt: skip
    legacy, iot, b = est.profiles
    assert (legacy.label, legacy.profile_id, legacy.anonymous) == ("", "legacy", True)
    assert iot.auth_modes == {"mtls", "basic"} and iot.channel_binding_required
    assert iot.rate_limit_per_principal_24h == 3 and iot.serverkeygen_enabled
    assert PasswordHasher().verify(iot.password_hash, "s3cret-passw0rd")
    assert est.mtls_trust_bundles == (bundle,)
    assert est.profile("b") is b and est.profile("nope") is None
    text = repr(est) + repr(Settings(est=est, demo=True))
    assert "s3cret" not in text and "argon2" not in text


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "CERTCTL_EST_ENABLED"),
        ({"CERTCTL_EST_PROFILES": "Bad_Label"}, "CERTCTL_EST_PROFILES"),
        ({"CERTCTL_EST_PROFILES": "est"}, "CERTCTL_EST_PROFILES"),
        ({"CERTCTL_EST_PROFILES": "a,a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p"},
         "CERTCTL_EST_PROFILES"),
        ({"CERTCTL_EST_PROFILES": "a"}, "CERTCTL_EST_PROFILE_A_PROFILE_ID"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_ISSUER_ID": "iss"}, "CERTCTL_EST_ISSUER_ID"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_ALLOWED_AUTH_MODES": "token"},
         "CERTCTL_EST_ALLOWED_AUTH_MODES"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_ALLOWED_AUTH_MODES": "basic"},
         "CERTCTL_EST_ENROLLMENT_PASSWORD"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_ENROLLMENT_PASSWORD": "long-enough-pw"},
         "CERTCTL_EST_ENROLLMENT_PASSWORD"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_MTLS_ENABLED": "true"},
         "CERTCTL_EST_MTLS_ENABLED"),
        ({"CERTCTL_EST_PROFILES": "a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p",
          "CERTCTL_EST_PROFILE_A_ALLOWED_AUTH_MODES": "mtls"},
         "CERTCTL_EST_PROFILE_A_ALLOWED_AUTH_MODES"),
        ({"CERTCTL_EST_PROFILES": "a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p",
          "CERTCTL_EST_PROFILE_A_MTLS_ENABLED": "true"},
         "CERTCTL_EST_PROFILE_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH"),
        ({"CERTCTL_EST_PROFILES": "a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p",
          "CERTCTL_EST_PROFILE_A_MTLS_ENABLED": "true",
          "CERTCTL_EST_PROFILE_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": "/nonexistent/ca.pem"},
         "CERTCTL_EST_PROFILE_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH"),
        ({"CERTCTL_EST_PROFILES": "a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p",
          "CERTCTL_EST_PROFILE_A_CHANNEL_BINDING_REQUIRED": "true"},
         "CERTCTL_EST_PROFILE_A_CHANNEL_BINDING_REQUIRED"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_RATE_LIMIT_PER_PRINCIPAL_24H": "lots"},
         "CERTCTL_EST_RATE_LIMIT_PER_PRINCIPAL_24H"),
        ({"CERTCTL_EST_PROFILE_ID": "p", "CERTCTL_EST_SERVERKEYGEN_ENABLED": "maybe"},
         "CERTCTL_EST_SERVERKEYGEN_ENABLED"),
    ],
)  # fmt: skip
def test_bad_configurations_refuse_to_start(env, variable):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"CERTCTL_DEMO_SEED": "true", **BASE, **env})
    assert str(raised.value).startswith(variable), raised.value


def test_a_bad_bundle_file_names_its_variable(tmp_path):
    bundle = tmp_path / "junk.pem"
    bundle.write_text("not a certificate")
    with pytest.raises(SettingsError, match=r"A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH.*no readable"):
        EstSettings.from_env({
            **BASE, "CERTCTL_EST_PROFILES": "a", "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p",
            "CERTCTL_EST_PROFILE_A_MTLS_ENABLED": "true",
            "CERTCTL_EST_PROFILE_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": str(bundle),
        })  # fmt: skip


def test_lockout_table_is_bounded_and_keys_ipv6_by_prefix():
    from certctl.domain.est.auth import BasicLockout

    lockout = BasicLockout(failures=2, window=3600, max_addresses=3)
    for host in range(2):
        lockout.failed(f"2001:db8::{host + 1}")  # one /64
    assert lockout.retry_after("2001:db8::99") > 0
    assert lockout.retry_after("2001:db8:1::1") == 0
    for index in range(5):
        lockout.failed(f"192.0.2.{index}")
    assert len(lockout) == 3  # the oldest addresses were forgotten
    assert lockout.retry_after("2001:db8::1") == 0


def test_the_listener_asks_for_client_certificates_of_mtls_profiles(tmp_path):
    from certctl.tls import client_trust_bundles
    from certctl_sdk.testing import TestCA

    assert client_trust_bundles(Settings(demo=True)) == ()
    bundle = tmp_path / "ca.pem"
    bundle.write_text(TestCA.create().certificate_pem)
    est = EstSettings.from_env({
        **BASE, "CERTCTL_EST_PROFILES": "a,b",
        "CERTCTL_EST_PROFILE_A_PROFILE_ID": "p", "CERTCTL_EST_PROFILE_A_MTLS_ENABLED": "true",
        "CERTCTL_EST_PROFILE_A_MTLS_CLIENT_CA_TRUST_BUNDLE_PATH": str(bundle),
        "CERTCTL_EST_PROFILE_B_PROFILE_ID": "q",
    })  # fmt: skip
    assert client_trust_bundles(Settings(demo=True, est=est)) == (bundle,)
