"""``CERTCTL_SCEP_*``: parsing, and the refusals that keep a broken SCEP server from starting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certctl.settings import Settings, SettingsError
from certctl_sdk.models import KeyType
from certctl_sdk.testing import TestCA


@pytest.fixture
def ra(tmp_path: Path) -> tuple[Path, Path]:
    leaf = TestCA.create(KeyType.RSA_2048).issue("RA", key_type=KeyType.RSA_2048)
    cert, key = tmp_path / "ra.pem", tmp_path / "ra.key"
    cert.write_text(leaf.certificate_pem)
    key.write_text(leaf.key_pem)
    key.chmod(0o600)
    return cert, key


def _env(ra: tuple[Path, Path], **extra: str) -> dict[str, str]:
    return {
        "CERTCTL_DEMO_SEED": "true",
        "CERTCTL_SCEP_ENABLED": "true",
        "CERTCTL_SCEP_RA_CERT_PATH": str(ra[0]),
        "CERTCTL_SCEP_RA_KEY_PATH": str(ra[1]),
        "CERTCTL_SCEP_PROFILES": "iot,corp-laptops",
        "CERTCTL_SCEP_PROFILE_IOT_PROFILE_ID": "prof-iot",
        "CERTCTL_SCEP_PROFILE_IOT_CHALLENGE_PASSWORD": "iot-secret",
        "CERTCTL_SCEP_PROFILE_CORP_LAPTOPS_PROFILE_ID": "laptops",
        "CERTCTL_SCEP_PROFILE_CORP_LAPTOPS_CHALLENGE_PASSWORD": "laptop-secret",
        **extra,
    }


def test_profiles_parse_and_secrets_stay_out_of_repr(ra):
    settings = Settings.from_env(
        _env(
            ra,
            CERTCTL_SCEP_PROFILE_ID="legacy",
            CERTCTL_SCEP_CHALLENGE_PASSWORD="legacy-pw",
            CERTCTL_SCEP_ISSUANCE_WAIT="30s",
        )
    ).scep
    assert [p.name for p in settings.profiles] == ["", "iot", "corp-laptops"]
    assert settings.profile("corp-laptops").profile_id == "laptops"
    assert settings.profile("iot").ra_cert_path == str(ra[0])  # the global RA by default
    assert settings.issuance_wait_seconds == 30
    assert "secret" not in repr(settings) and "legacy-pw" not in repr(settings)
    assert Settings.from_env({"CERTCTL_DEMO_SEED": "true"}).scep.enabled is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CERTCTL_SCEP_PROFILE_IOT_CHALLENGE_PASSWORD": ""}, "IOT_CHALLENGE_PASSWORD is required"),
        ({"CERTCTL_SCEP_RA_KEY_PATH": ""}, "RA_KEY_PATH are required"),
        ({"CERTCTL_SCEP_RA_CERT_PATH": "/nonexistent/ra.pem"}, "cannot read"),
        ({"CERTCTL_SCEP_PROFILES": "Bad_Name"}, "not a path id"),
        ({"CERTCTL_SCEP_PROFILES": "iot,iot"}, "listed twice"),
        ({"CERTCTL_SCEP_PROFILES": "pkiclient.exe"}, "not a path id"),
        ({"CERTCTL_SCEP_PROFILE_IOT_PROFILE_ID": ""}, "IOT_PROFILE_ID"),
        ({"CERTCTL_SCEP_PROFILES": ""}, "no profile is configured"),
        ({"CERTCTL_SCEP_PROFILE_IOT_MTLS_ENABLED": "true"}, "MTLS_CLIENT_CA_TRUST_BUNDLE_PATH"),
        ({"CERTCTL_SCEP_PROFILE_IOT_INTUNE_ENABLED": "true"}, "INTUNE_AUDIENCE are required"),
        ({"CERTCTL_SCEP_ENABLED": "maybe"}, "expected true or false"),
    ],
)
def test_refuses_to_start(ra, change, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(_env(ra, **change))


def test_ra_key_permissions_pair_type_and_validity(ra, tmp_path):
    _, key = ra
    key.chmod(0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        Settings.from_env(_env(ra))
    key.chmod(0o600)
    other = TestCA.create(KeyType.RSA_2048).issue("other", key_type=KeyType.RSA_2048)
    mismatched = tmp_path / "other.pem"
    mismatched.write_text(other.certificate_pem)
    with pytest.raises(SettingsError, match="does not match"):
        Settings.from_env(_env((mismatched, key)))
    ec_leaf = TestCA.create().issue("ec RA", key_type=KeyType.ECDSA_P256)
    ec_cert, ec_key = tmp_path / "ec.pem", tmp_path / "ec.key"
    ec_cert.write_text(ec_leaf.certificate_pem)
    ec_key.write_text(ec_leaf.key_pem)
    ec_key.chmod(0o600)
    with pytest.raises(SettingsError, match="must be RSA"):
        Settings.from_env(_env((ec_cert, ec_key)))
    old = TestCA.create(KeyType.RSA_2048).issue(
        "expired RA", key_type=KeyType.RSA_2048, validity=timedelta(days=1),
        now=datetime(2020, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    old_cert, old_key = tmp_path / "old.pem", tmp_path / "old.key"
    old_cert.write_text(old.certificate_pem)
    old_key.write_text(old.key_pem)
    old_key.chmod(0o600)
    with pytest.raises(SettingsError, match="not valid now"):
        Settings.from_env(_env((old_cert, old_key)))
