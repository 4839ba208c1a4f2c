"""How configuration maps onto the deploy plan; no nginx needed."""

from __future__ import annotations

import pytest

from certctl_sdk import ConfigurationError, decode_config
from certctl_sdk.testing import TestCA, make_context, make_deploy_request
from certctl_target_nginx import NginxTarget, NginxTargetConfig


@pytest.fixture(scope="module")
def leaf():
    return TestCA.create().issue("www.example.test")


def target(**settings: object) -> NginxTarget:
    base: dict[str, object] = {"cert_path": "/etc/ssl/site.pem", "key_path": "/etc/ssl/site.key"}
    config = decode_config(NginxTargetConfig, {**base, **settings})
    return NginxTarget(config, make_context())


def test_default_plan_writes_a_full_chain_and_the_key(leaf):
    plan = target().plan(make_deploy_request(leaf), leaf.key_pem)

    cert, key = plan.files
    assert cert.path == "/etc/ssl/site.pem"
    assert cert.content.decode() == leaf.certificate_pem + "".join(leaf.chain_pem)
    assert cert.content.count(b"BEGIN CERTIFICATE") == 2
    assert key.path == "/etc/ssl/site.key"
    assert key.content.decode() == leaf.key_pem
    assert plan.validate_command == ("nginx", "-t")
    assert plan.reload_command == ("nginx", "-s", "reload")
    assert plan.tls_check is None


def test_separate_chain_file_keeps_the_leaf_alone(leaf):
    plan = target(chain_path="/etc/ssl/chain.pem").plan(make_deploy_request(leaf), leaf.key_pem)

    cert, chain, _key = plan.files
    assert cert.content.decode() == leaf.certificate_pem
    assert chain.path == "/etc/ssl/chain.pem"
    assert chain.content.decode() == "".join(leaf.chain_pem)


def test_agent_held_key_is_not_written(leaf):
    plan = target().plan(make_deploy_request(leaf, with_key=False), None)

    assert [f.path for f in plan.files] == ["/etc/ssl/site.pem"]


def test_modes_and_ownership_reach_every_file(leaf):
    plan = target(cert_mode="0644", key_mode="0640", owner="root", group="ssl-cert").plan(
        make_deploy_request(leaf), leaf.key_pem
    )

    cert, key = plan.files
    assert (cert.mode, key.mode) == (0o644, 0o640)
    assert {(f.owner, f.group) for f in plan.files} == {("root", "ssl-cert")}


def test_prefix_and_config_file_reach_both_commands(leaf):
    t = target(nginx_binary="/usr/sbin/nginx", prefix="/srv/nginx", config_file="/srv/nginx.conf")
    plan = t.plan(make_deploy_request(leaf), leaf.key_pem)

    nginx = ("/usr/sbin/nginx", "-p", "/srv/nginx", "-c", "/srv/nginx.conf")
    assert plan.validate_command == (*nginx, "-t")
    assert plan.reload_command == (*nginx, "-s", "reload")


def test_explicit_commands_win(leaf):
    t = target(
        config_file="/srv/nginx.conf",
        validate_command=["sudo", "nginx", "-t"],
        reload_command=["systemctl", "reload", "nginx"],
    )
    plan = t.plan(make_deploy_request(leaf), leaf.key_pem)

    assert plan.validate_command == ("sudo", "nginx", "-t")
    assert plan.reload_command == ("systemctl", "reload", "nginx")


def test_tls_check_expects_the_new_fingerprint(leaf):
    request = make_deploy_request(leaf)

    check = target(tls_host="10.0.0.5", tls_port=8443).plan(request, leaf.key_pem).tls_check

    assert check is not None
    assert (check.host, check.port) == ("10.0.0.5", 8443)
    assert check.server_name == "www.example.test"  # SNI defaults to the common name
    assert check.expected_fingerprint_sha256 == leaf.fingerprint_sha256
    named = target(tls_host="lb", tls_server_name="edge.example").plan(request, leaf.key_pem)
    assert named.tls_check is not None
    assert named.tls_check.server_name == "edge.example"


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"cert_path": "relative.pem"}, "cert_path"),
        ({"key_path": "/etc/ssl/./site.pem"}, "different files"),
        ({"chain_path": "/etc/ssl/site.key"}, "different files"),
        ({"key_mode": "640x"}, "key_mode"),
        ({"validate_command": []}, "validate_command"),
        ({"tls_port": 0}, "tls_port"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_configuration_is_refused(settings, fragment):
    with pytest.raises(ConfigurationError) as caught:
        target(**settings)

    assert fragment in caught.value.message
