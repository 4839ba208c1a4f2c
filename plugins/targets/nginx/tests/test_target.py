"""The NGINX target against a real nginx on loopback (see conftest.py for the server)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certctl_sdk import DeploymentError, DeployRequest
from certctl_sdk.testing import make_deploy_request

pytestmark = pytest.mark.nginx


def openssl_serial(port: int, server_name: str) -> int:
    """What `openssl s_client` sees: an independent TLS stack from Python's ssl module."""
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", server_name],
        input=b"",
        capture_output=True,
        timeout=15,
        check=True,
    )
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"],
        input=handshake.stdout,
        capture_output=True,
        timeout=15,
        check=True,
    )
    return int(shown.stdout.decode().strip().removeprefix("serial="), 16)


def mismatched(request: DeployRequest, other: DeployRequest) -> DeployRequest:
    """``request``'s certificate with ``other``'s private key: nginx -t must refuse it."""
    return DeployRequest(
        certificate_id=request.certificate_id,
        common_name=request.common_name,
        certificate_pem=request.certificate_pem,
        chain_pem=request.chain_pem,
        serial=request.serial,
        fingerprint_sha256=request.fingerprint_sha256,
        private_key=other.private_key,
    )


async def test_deploy_serves_the_new_certificate(nginx, make_target, second, second_request):
    reloads = nginx.reloads()
    workers = nginx.workers()
    assert nginx.served_serial() == nginx.first.serial

    result = await make_target().deploy(second_request)

    assert result.changed
    assert result.verified_serial == second.serial
    nginx.settle(replaced=workers)
    assert nginx.served_serial() == second.serial
    if shutil.which("openssl"):
        assert openssl_serial(nginx.port, "www.example.test") == int(second.serial, 16)
    assert nginx.cert_path.read_text() == second.certificate_pem + "".join(second.chain_pem)
    assert nginx.key_path.read_text() == second.key_pem
    assert nginx.reloads() == reloads + 1


async def test_deploying_the_same_certificate_again_changes_nothing(
    nginx, make_target, second, second_request
):
    target = make_target()
    workers = nginx.workers()
    await target.deploy(second_request)
    nginx.settle(replaced=workers)
    reloads = nginx.reloads()
    stamps = {p: p.stat().st_mtime_ns for p in (nginx.cert_path, nginx.key_path)}

    again = await target.deploy(second_request)

    assert not again.changed
    assert nginx.reloads() == reloads
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert nginx.served_serial() == second.serial


async def test_key_that_does_not_match_is_rolled_back(nginx, make_target, ca, second_request):
    third = make_deploy_request(ca.issue("www.example.test"))
    before = nginx.files()

    with pytest.raises(DeploymentError) as caught:
        await make_target().deploy(mismatched(second_request, third))

    assert caught.value.rolled_back
    assert "key values mismatch" in caught.value.message  # nginx -t's own diagnosis
    assert nginx.files() == before
    assert nginx.served_serial() == nginx.first.serial


async def test_failing_validate_command_is_rolled_back(nginx, make_target, second_request):
    before = nginx.files()

    with pytest.raises(DeploymentError) as caught:
        await make_target(validate_command=["false"]).deploy(second_request)

    assert caught.value.rolled_back
    assert nginx.files() == before
    assert nginx.served_serial() == nginx.first.serial


async def test_certificate_not_served_after_reload_is_rolled_back(
    nginx, make_target, second_request
):
    # A reload that does nothing: nginx keeps serving the first certificate, so the TLS check
    # must notice the mismatch and put the old files back.
    target = make_target(reload_command=["true"], tls_timeout=1.0)
    before = nginx.files()

    with pytest.raises(DeploymentError) as caught:
        await target.deploy(second_request)

    assert caught.value.rolled_back
    assert nginx.files() == before
    assert nginx.served_serial() == nginx.first.serial


async def test_without_tls_host_no_check_runs(nginx, make_target, second, second_request):
    # The same no-op reload succeeds when no check is configured: proof the check is opt-in.
    result = await make_target(reload_command=["true"], tls_host=None).deploy(second_request)

    assert result.changed
    assert nginx.cert_path.read_text().startswith(second.certificate_pem)


async def test_agent_held_key_deploys_the_certificate_alone(nginx, make_target, ca):
    key = serialization.load_pem_private_key(nginx.first.key_pem.encode(), password=None)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test")]))
        .sign(key, hashes.SHA256())
    )
    renewed = ca.sign_csr(csr.public_bytes(serialization.Encoding.PEM).decode())
    key_before = nginx.key_path.read_bytes()
    workers = nginx.workers()

    result = await make_target().deploy(make_deploy_request(renewed, with_key=False))

    assert result.changed
    nginx.settle(replaced=workers)
    assert nginx.served_serial() == renewed.serial
    assert nginx.key_path.read_bytes() == key_before


async def test_agent_held_key_that_does_not_match_is_rolled_back(nginx, make_target, second):
    before = nginx.files()

    with pytest.raises(DeploymentError) as caught:
        await make_target().deploy(make_deploy_request(second, with_key=False))

    assert caught.value.rolled_back
    assert nginx.files() == before
    assert nginx.served_serial() == nginx.first.serial


async def test_separate_chain_file(nginx, make_target, second, second_request):
    chain_path = nginx.cert_path.parent / "chain.pem"
    workers = nginx.workers()

    result = await make_target(chain_path=str(chain_path)).deploy(second_request)

    assert result.changed
    assert nginx.cert_path.read_text() == second.certificate_pem
    assert chain_path.read_text() == "".join(second.chain_pem)
    nginx.settle(replaced=workers)
    assert nginx.served_serial() == second.serial


async def test_check_runs_nginx_t(nginx, make_target, tmp_path):
    ok = await make_target().check()
    assert ok.ok, ok.message
    assert "-t" in ok.details["command"]

    broken = tmp_path / "broken.conf"
    broken.write_text(nginx.conf.read_text().replace("events {", "events { bogus_directive 1;"))
    failed = await make_target(config_file=str(broken)).check()
    assert not failed.ok
    assert "bogus_directive" in failed.message


def test_the_fixture_nginx_really_is_running(nginx):
    # Guards the other tests: a stopped nginx would make "old serial still served" vacuous.
    os.kill(nginx.pid, 0)  # raises if the master is gone
    assert nginx.served_serial() == nginx.first.serial
