"""An app serving SCEP profile ``devices`` for the tests, and the test client (``kit``).

The client half lives in tests/integration/scep_client.py (shared with benchmarks/scep.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from scep_client import CHALLENGE, CertRep, Device, make_csr, read_cert_rep, self_signed

from certctl.domain.scep.settings import ScepProfileSettings, ScepSettings
from certctl_sdk.models import KeyType
from certctl_sdk.testing import TestCA


@dataclass
class ScepApp:
    client: Any
    ra: x509.Certificate
    ra_key: rsa.RSAPrivateKey
    profile_id: str
    url: str = "/scep/devices"

    async def post(self, message: bytes) -> Any:
        return await self.client.post(f"{self.url}?operation=PKIOperation", content=message)

    async def enrol(self, device: Device, message: bytes | None = None) -> CertRep:
        r = await self.post(message if message is not None else device.pkcs_req(self.ra))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/x-pki-message"
        return read_cert_rep(r.content, device, self.ra)


@pytest.fixture(scope="session")
def ra_files(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, x509.Certificate, rsa.RSAPrivateKey]:
    """One RA for the session: RSA key generation is the slow part of each app."""
    leaf = TestCA.create(common_name="RA issuer").issue(
        "certctl SCEP RA", key_type=KeyType.RSA_2048
    )
    directory = tmp_path_factory.mktemp("scep-ra")
    cert, key = directory / "ra.pem", directory / "ra.key"
    cert.write_text(leaf.certificate_pem)
    key.write_text(leaf.key_pem)
    key.chmod(0o600)
    loaded = serialization.load_pem_private_key(leaf.key_pem.encode(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return cert, key, x509.load_pem_x509_certificate(leaf.certificate_pem.encode()), loaded


@pytest.fixture
def scep_app(
    app_factory: Callable[..., Any], admin_headers: dict[str, str], ra_files: Any
) -> Callable[..., Any]:
    """``await scep_app(**profile_fields)``: an app serving SCEP profile ``devices``."""
    cert, key, ra, ra_key = ra_files
    made: dict[str, str] = {}

    async def make(
        *, background: bool = True, wait: int = 5, profile: dict[str, Any] | None = None,
        scep: dict[str, Any] | None = None, certificate_profile: dict[str, Any] | None = None,
        **settings: Any,
    ) -> ScepApp:  # fmt: skip
        endpoint = ScepProfileSettings(
            name="devices", profile_id="scep-devices", challenge_password=CHALLENGE,
            ra_cert_path=str(cert), ra_key_path=str(key), **(profile or {}),
        )  # fmt: skip
        client = await app_factory(
            background=background,
            rate_limit_enabled=False,
            scep=ScepSettings(
                enabled=True, profiles=(endpoint,), issuance_wait_seconds=wait, **(scep or {})
            ),
            **settings,
        )
        if "profile_id" in made:  # a second app on the same database (another setting)
            return ScepApp(client, ra, ra_key, made["profile_id"])
        r = await client.post(
            "/api/v1/issuers",
            json={"name": "scep-ca", "type": "local", "config": {}},  # a P-256 CA: any works
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        body = {"name": "scep-devices", "issuer_id": r.json()["id"], **(certificate_profile or {})}
        r = await client.post("/api/v1/profiles", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        made["profile_id"] = r.json()["id"]
        return ScepApp(client, ra, ra_key, r.json()["id"])

    return make


@pytest.fixture
def kit() -> Any:
    """The client half for tests: ``kit.Device``, ``kit.read_cert_rep``, ``kit.make_csr``."""

    class Kit:
        Device = Device
        read_cert_rep = staticmethod(read_cert_rep)
        make_csr = staticmethod(make_csr)
        self_signed = staticmethod(self_signed)
        CHALLENGE = CHALLENGE

    return Kit
