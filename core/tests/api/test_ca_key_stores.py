"""CA keys in a PKCS#11 token (SoftHSM2): generated inside it, never extractable, signing all.

A throwaway SoftHSM2 token per test session (``SOFTHSM2_CONF`` points at a temporary token
directory). The tree's intermediate and issuing CA keys live in it; leaves, CRLs and OCSP
responder certificates are signed there, and everything is checked with cryptography and the
openssl CLI.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.verification import PolicyBuilder, Store
from sqlalchemy import select, text

from certctl.app import create_app
from certctl.db.base import Base
from certctl.db.models import IntermediateCa
from certctl.domain.ocsp.service import responder_service
from certctl.lib.pkcs11_settings import Pkcs11Settings
from certctl.lib.pkcs11_token import KeyUri
from certctl.settings import Settings, SettingsError

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LABEL = "certctl-test"
PIN = "246810"


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> Pkcs11Settings:
    """A fresh SoftHSM2 token for this test process (each xdist worker gets its own)."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(MODULE).exists():
        if os.environ.get("CERTCTL_REQUIRE_PEERS"):
            pytest.fail("softhsm2 is required (CERTCTL_REQUIRE_PEERS) but not installed")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    # SoftHSM reads the variable when the module is first loaded in this process.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", LABEL, "--pin", PIN, "--so-pin", "13579135"],
        check=True,
        capture_output=True,
    )
    return Pkcs11Settings(module=MODULE, token_label=LABEL, pin=PIN)


class Direct:
    """The test's own session on the token (as an operator's tool would open one)."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        tok = pkcs11.lib(settings.module).get_token(token_label=settings.token_label)
        try:
            self.session = tok.open(rw=True, user_pin=settings.pin)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            self.session = tok.open(rw=True)

    def objects(self, **attrs):
        template = {getattr(pkcs11.Attribute, k.upper().rstrip("_")): v for k, v in attrs.items()}
        return list(self.session.get_objects(template))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.session.close()


async def _issuer(client, headers):
    r = await client.post(
        "/api/v1/issuers", json={"name": "tree", "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _create(client, headers, issuer, name, *, status=201, **body):
    body = {"name": name, "subject": {"common_name": name}, **body}
    r = await client.post(f"/api/v1/issuers/{issuer}/intermediates", json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _choose(client, headers, issuer, ca_id):
    r = await client.put(
        f"/api/v1/issuers/{issuer}/issuing-ca", json={"ca_id": ca_id}, headers=headers
    )
    assert r.status_code == 200, r.text


async def _order(client, headers, issuer, cn):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": cn, "issuer_id": issuer, "validity_days": 10},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    return (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()


async def _issued(client, headers, issuer, cn):
    cert = await _order(client, headers, issuer, cn)
    assert cert["status"] == "active", cert
    pem = (
        await client.get(f"/api/v1/certificates/{cert['id']}/export/pem", headers=headers)
    ).json()
    leaf = x509.load_pem_x509_certificate(pem["certificate_pem"].encode())
    return cert["id"], leaf, x509.load_pem_x509_certificates(pem["chain_pem"].encode())


def _cert(row):
    return x509.load_pem_x509_certificate(row["certificate_pem"].encode())


def _write(path: Path, *certs) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


async def _all_rows(client) -> str:
    """Every value of every table, as text: what a database dump would show."""
    dumped = []
    async with client.runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                dumped.append(repr(tuple(row)))
        if conn.dialect.name == "sqlite":  # and anything outside the models
            names = await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            for (name,) in names.all():
                rows = await conn.execute(text(f'SELECT * FROM "{name}"'))  # noqa: S608
                dumped.extend(repr(tuple(r)) for r in rows.all())
    return "\n".join(dumped)


async def test_a_three_level_tree_signs_everything_in_the_token(
    app_factory, admin_headers, token, tmp_path
):
    client = await app_factory(pkcs11=token)
    issuer = await _issuer(client, admin_headers)
    inter = await _create(
        client,
        admin_headers,
        issuer,
        "Token Intermediate",
        key_store="pkcs11",
        algorithm="RSA-2048",
    )
    issuing = await _create(
        client,
        admin_headers,
        issuer,
        "Token Issuing CA",
        key_store="pkcs11",
        algorithm="ECDSA-P384",
        parent_ca_id=inter["id"],
    )
    for row in (inter, issuing):
        assert row["key_store"] == "pkcs11"
        uri = KeyUri(row["key_driver_id"])
        assert uri.startswith(f"pkcs11:token={LABEL};object={row['id']};id=%")
        assert uri.token == LABEL and uri.label == row["id"] and len(uri.key_id) == 16
    inter_cert, issuing_cert = _cert(inter), _cert(issuing)
    issuing_cert.verify_directly_issued_by(inter_cert)  # signed by the intermediate's token key
    await _choose(client, admin_headers, issuer, issuing["id"])

    revoked_id, revoked_leaf, chain = await _issued(client, admin_headers, issuer, "a.example.test")
    _, good_leaf, _ = await _issued(client, admin_headers, issuer, "b.example.test")
    assert chain[:2] == [issuing_cert, inter_cert]
    root = chain[2]
    assert revoked_leaf.signature_hash_algorithm.name == "sha384"

    # The chain passes cryptography's RFC 5280 verifier and openssl's strict mode.
    verifier = (
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("b.example.test"))
    )
    verifier.verify(good_leaf, [issuing_cert, inter_cert])
    root_pem = _write(tmp_path / "root.pem", root)
    untrusted = _write(tmp_path / "untrusted.pem", issuing_cert, inter_cert)
    leaf_pem = _write(tmp_path / "leaf.pem", good_leaf)
    done = _openssl(
        "verify", "-x509_strict", "-CAfile", str(root_pem), "-untrusted", str(untrusted),
        str(leaf_pem),
    )  # fmt: skip
    assert done.returncode == 0 and f"{leaf_pem}: OK" in done.stdout, done.stdout + done.stderr

    # CRL: signed by the issuing CA's token key.
    r = await client.post(
        f"/api/v1/certificates/{revoked_id}/revoke",
        json={"reason": "keyCompromise"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    crl_der = (await client.get(f"/.well-known/pki/crl/{issuer}")).content
    crl = x509.load_der_x509_crl(crl_der)
    assert crl.issuer == issuing_cert.subject
    assert crl.is_signature_valid(issuing_cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(revoked_leaf.serial_number) is not None
    (tmp_path / "crl.der").write_bytes(crl_der)
    issuing_pem = _write(tmp_path / "issuing.pem", issuing_cert)
    done = _openssl(
        "crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-CAfile", str(issuing_pem),
        "-noout", "-verify",
    )  # fmt: skip
    assert done.returncode == 0 and "verify OK" in done.stderr + done.stdout, done.stderr

    # OCSP: signed in the token by the issuing CA; openssl verifies the answers.
    await responder_service(client.runtime).refresh_all()
    ca_file = _write(tmp_path / "chain.pem", root, inter_cert, issuing_cert)
    for leaf, status, word in (
        (revoked_leaf, ocsp.OCSPCertStatus.REVOKED, "revoked"),
        (good_leaf, ocsp.OCSPCertStatus.GOOD, "good"),
    ):
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing_cert, hashes.SHA256())
        r = await client.post(
            f"/.well-known/pki/ocsp/{issuer}",
            content=request.build().public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        answer = ocsp.load_der_ocsp_response(r.content)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == status
        # The issuing CA answers itself, through the token: no responder key exists anywhere.
        assert answer.certificates == []
        assert answer.responder_key_hash == (
            x509.SubjectKeyIdentifier.from_public_key(issuing_cert.public_key()).digest
        )
        assert answer.signature_hash_algorithm.name == "sha384"
        issuing_cert.public_key().verify(
            answer.signature, answer.tbs_response_bytes, ec.ECDSA(hashes.SHA384())
        )
        (tmp_path / "resp.der").write_bytes(r.content)
        leaf_file = _write(tmp_path / f"{word}.pem", leaf)
        done = _openssl(
            "ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(issuing_pem),
            "-sha256", "-cert", str(leaf_file), "-CAfile", str(ca_file), "-no_nonce",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Response verify OK" in done.stderr, done.stderr
        assert f"{leaf_file}: {word}" in done.stdout, done.stdout

    # The keys are in the token, sensitive and never extractable: reading them out fails.
    with Direct(token) as direct:
        for row in (inter, issuing):
            [key] = direct.objects(
                id=KeyUri(row["key_driver_id"]).key_id, class_=pkcs11.ObjectClass.PRIVATE_KEY
            )
            assert key[pkcs11.Attribute.SENSITIVE] and key[pkcs11.Attribute.NEVER_EXTRACTABLE]
            assert not key[pkcs11.Attribute.EXTRACTABLE]
            assert key[pkcs11.Attribute.ALWAYS_SENSITIVE]
            secret = pkcs11.Attribute.PRIVATE_EXPONENT if row is inter else pkcs11.Attribute.VALUE
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[secret]
            with pytest.raises(pkcs11.exceptions.PKCS11Error):  # read-only once false
                key[pkcs11.Attribute.EXTRACTABLE] = True

    # And nothing of them is in the database: no sealed key, no PEM private key anywhere.
    async with client.runtime.sessions() as session:
        rows = (await session.scalars(select(IntermediateCa))).all()
        assert {r.key_store for r in rows} == {"pkcs11"}
        assert all(r.private_key_enc is None for r in rows)
    dump = await _all_rows(client)
    assert "PRIVATE KEY" not in dump
    async with client.runtime.sessions() as session:  # nor a delegated responder's key
        assert (await session.scalar(text("SELECT count(*) FROM ocsp_responders"))) == 0
    assert inter["key_driver_id"] in dump  # the dump did read the rows


def _objects(token) -> int:
    with Direct(token) as direct:
        return len(direct.objects())


async def test_a_deleted_or_replaced_token_key_fails_clearly_without_half_written_rows(
    app_factory, admin_headers, token
):
    client = await app_factory(pkcs11=token)
    issuer = await _issuer(client, admin_headers)
    parent = await _create(client, admin_headers, issuer, "Doomed", key_store="pkcs11")
    await _choose(client, admin_headers, issuer, parent["id"])
    _, leaf, _ = await _issued(client, admin_headers, issuer, "ok.example.test")
    key_id = KeyUri(parent["key_driver_id"]).key_id

    # Another key under the same id (a wrong backup restored): what it signs does not verify,
    # the new CA's key is destroyed again and no row is written.
    with Direct(token) as direct:
        for obj in direct.objects(id=key_id):
            obj.destroy()
        direct.session.generate_keypair(pkcs11.KeyType.RSA, 2048, id=key_id, store=True)
    before = _objects(token)
    problem = await _create(
        client, admin_headers, issuer, "Child", status=503, key_store="pkcs11",
        parent_ca_id=parent["id"],
    )  # fmt: skip
    assert "does not verify" in problem["detail"] or "does not match" in problem["detail"]
    assert _objects(token) == before

    # The key deleted outright: 503 naming the key, for children, leaves and the CRL.
    with Direct(token) as direct:
        for obj in direct.objects(id=key_id):
            obj.destroy()
    problem = await _create(
        client, admin_headers, issuer, "Child", status=503, key_store="pkcs11",
        parent_ca_id=parent["id"],
    )  # fmt: skip
    assert (
        "missing from token" in problem["detail"] and parent["key_driver_id"] in problem["detail"]
    )
    listed = await client.get(f"/api/v1/issuers/{issuer}/intermediates", headers=admin_headers)
    assert [row["id"] for row in listed.json()] == [parent["id"]]
    # A restarted server (a fresh issuer instance on the same database) asks the token again.
    client = await app_factory(pkcs11=token)
    refused = await _order(client, admin_headers, issuer, "late.example.test")
    assert refused["status"] != "active", refused
    jobs = await client.get(
        "/api/v1/jobs", params={"certificate_id": refused["id"]}, headers=admin_headers
    )
    assert "missing from token" in jobs.text, jobs.text
    r = await client.get(f"/.well-known/pki/crl/{issuer}")
    assert r.status_code == 503 and "missing from token" in r.text, r.text
    # OCSP answers "try later" (RFC 6960 tryLater) rather than signing with anything else.
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, _cert(parent), hashes.SHA256())
    r = await client.post(
        f"/.well-known/pki/ocsp/{issuer}",
        content=request.build().public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    answer = ocsp.load_der_ocsp_response(r.content)
    assert answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER


async def test_pkcs11_is_refused_when_no_token_is_configured(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    problem = await _create(
        client, admin_headers, issuer, "No token", status=400, key_store="pkcs11"
    )
    assert "CERTCTL_PKCS11_MODULE" in problem["detail"]
    listed = await client.get(f"/api/v1/issuers/{issuer}/intermediates", headers=admin_headers)
    assert listed.json() == []
    # The file store is the default and keeps working.
    row = await _create(client, admin_headers, issuer, "File CA")
    assert row["key_store"] == "file" and row["key_driver_id"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pin": "000000"}, "CERTCTL_PKCS11_PIN: the token 'certctl-test' refused the PIN"),
        ({"token_label": "no-such-token"}, "no token labelled 'no-such-token'"),
        ({"module": "/nonexistent/libpkcs11.so"}, "CERTCTL_PKCS11_MODULE: cannot load"),
    ],
)
def test_the_server_refuses_to_start_with_a_token_it_cannot_open(
    settings_factory, token, change, message
):
    broken = Pkcs11Settings(**{**msgspec_fields(token), **change})
    with pytest.raises(SettingsError, match=message) as caught:
        create_app(settings_factory(pkcs11=broken))
    assert token.pin not in str(caught.value) and "000000" not in str(caught.value)


def msgspec_fields(settings: Pkcs11Settings) -> dict[str, str]:
    return {"module": settings.module, "token_label": settings.token_label, "pin": settings.pin}


def test_pkcs11_settings_from_the_environment(tmp_path):
    base = {"CERTCTL_CONFIG_ENCRYPTION_KEY": "k" * 40}
    assert Settings.from_env(base).pkcs11 is None
    pin_file = tmp_path / "pin"
    pin_file.write_text("4321\n")
    parsed = Settings.from_env(
        {
            **base,
            "CERTCTL_PKCS11_MODULE": MODULE,
            "CERTCTL_PKCS11_TOKEN_LABEL": "ca",
            "CERTCTL_PKCS11_PIN_FILE": str(pin_file),
        }
    ).pkcs11
    assert parsed == Pkcs11Settings(module=MODULE, token_label="ca", pin="4321")
    assert "4321" not in repr(parsed)
    for env, message in (
        ({"CERTCTL_PKCS11_TOKEN_LABEL": "ca"}, "CERTCTL_PKCS11_MODULE: required"),
        ({"CERTCTL_PKCS11_MODULE": MODULE, "CERTCTL_PKCS11_PIN": "1"}, "TOKEN_LABEL: required"),
        (
            {"CERTCTL_PKCS11_MODULE": MODULE, "CERTCTL_PKCS11_TOKEN_LABEL": "ca"},
            "the token's user PIN is required",
        ),
        (
            {
                "CERTCTL_PKCS11_MODULE": MODULE,
                "CERTCTL_PKCS11_TOKEN_LABEL": "ca",
                "CERTCTL_PKCS11_PIN": "1",
                "CERTCTL_PKCS11_PIN_FILE": str(pin_file),
            },
            "set only one",
        ),
        (
            {
                "CERTCTL_PKCS11_MODULE": MODULE,
                "CERTCTL_PKCS11_TOKEN_LABEL": "ca",
                "CERTCTL_PKCS11_PIN_FILE": str(tmp_path / "missing"),
            },
            "CERTCTL_PKCS11_PIN_FILE: cannot read",
        ),
    ):
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({**base, **env})


def test_key_uris_follow_rfc_7512():
    uri = KeyUri.build("my token;1", "ica-1", b"\x00\xff;")
    assert uri == "pkcs11:token=my%20token%3B1;object=ica-1;id=%00%ff%3b;type=private"
    assert uri.token == "my token;1" and uri.label == "ica-1" and uri.key_id == b"\x00\xff;"
    with pytest.raises(ValueError, match="not a pkcs11"):
        KeyUri("file:///x").attributes()
