"""The Opsgenie notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import logging
import socket
import time

import msgspec
import pytest

from certctl_notifier_opsgenie import OpsgenieNotifierConfig
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    RejectedError,
    Secret,
    Severity,
    TransientError,
    decode_config,
)

ACCEPTED = b'{"result":"Request will be processed","took":0.1,"requestId":"r1"}'


async def test_create_alert_shape(make_notifier, receiver, notification, api_key):
    receiver.script = [receiver.Reply(202, body=ACCEPTED)]

    await make_notifier().send(notification)

    (request,) = receiver.requests
    assert request.path == "/v2/alerts"
    assert request.headers["authorization"] == f"GenieKey {api_key}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "message": "www.example.com expires in 7 days",
        "alias": "certctl/crt_42/expiry",
        "description": "The certificate for www.example.com expires on 2025-03-08.",
        "priority": "P3",
        "tags": ["certctl"],
        "details": {
            "event": "certificate.expiring",
            "severity": "warning",
            "notification_id": "ntf_01JNGENIE",
            "occurred_at": "2025-03-01T12:00:00+00:00",
            "certificate_id": "crt_42",
            "days_left": "7",
        },
        "source": "certctl",
        "entity": "crt_42",
    }


@pytest.mark.parametrize(
    ("severity", "default", "custom"),
    [(Severity.INFO, "P5", "P4"), (Severity.WARNING, "P3", "P2"), (Severity.CRITICAL, "P1", "P1")],
)
async def test_priority_follows_severity(
    make_notifier, receiver, notification, severity, default, custom
):
    from certctl_notifier_opsgenie import Priorities

    sent = msgspec.structs.replace(notification, severity=severity)

    await make_notifier(min_severity="info").send(sent)
    await make_notifier(
        min_severity="info", priorities=Priorities(info="P4", warning="P2", critical="P1")
    ).send(sent)

    assert [r.json["priority"] for r in receiver.requests] == [default, custom]


async def test_renewal_closes_the_alert_by_alias(make_notifier, receiver, notification, api_key):
    notifier = make_notifier(tags=["pki", "prod"], source="certctl-prod")
    renewed = msgspec.structs.replace(
        notification, id="ntf_02", event="certificate.renewed", severity=Severity.INFO
    )

    await notifier.send(notification)
    await notifier.send(renewed)

    create, close = receiver.requests
    assert create.json["alias"] == "certctl/crt_42/expiry"
    assert create.json["tags"] == ["pki", "prod"]
    assert close.path == "/v2/alerts/certctl%2Fcrt_42%2Fexpiry/close?identifierType=alias"
    assert close.headers["authorization"] == f"GenieKey {api_key}"
    assert close.json == {
        "source": "certctl-prod",
        "note": "Closed by certificate.renewed (ntf_02)",
    }


async def test_deployment_failure_and_recovery(make_notifier, receiver, notification):
    notifier = make_notifier()
    failed = msgspec.structs.replace(
        notification, event="deployment.failed", severity=Severity.CRITICAL
    )
    deployed = msgspec.structs.replace(notification, event="certificate.deployed")

    await notifier.send(failed)
    await notifier.send(deployed)

    create, close = receiver.requests
    assert create.json["priority"] == "P1"
    assert create.json["alias"] == "certctl/crt_42/deployment"
    assert close.path.startswith("/v2/alerts/certctl%2Fcrt_42%2Fdeployment/close")


async def test_below_min_severity_and_orphan_recoveries_send_nothing(
    make_notifier, receiver, notification
):
    info = msgspec.structs.replace(notification, severity=Severity.INFO)
    orphan = msgspec.structs.replace(notification, event="certificate.renewed", certificate_id=None)

    await make_notifier().send(info)
    await make_notifier().send(orphan)

    assert receiver.requests == []


async def test_without_a_certificate_the_notification_id_is_the_alias(
    make_notifier, receiver, notification
):
    job = msgspec.structs.replace(notification, event="job.failed", certificate_id=None)

    await make_notifier(base_url=receiver.base_url + "/og/").send(job)

    (request,) = receiver.requests
    assert request.path == "/og/v2/alerts"
    assert request.json["alias"] == "certctl/ntf_01JNGENIE"
    assert "entity" not in request.json


async def test_throttling_is_transient_with_retry_after(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "20"}, body=b"")]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert caught.value.retry_after == 20
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient(make_notifier, receiver, notification, status):
    receiver.script = [receiver.Reply(status)]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert str(status) in caught.value.message


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key_is_an_authentication_error(
    make_notifier, receiver, notification, status, api_key
):
    body = f'{{"message":"Key {api_key} is invalid","took":0.0}}'.encode()
    receiver.script = [receiver.Reply(status, body=body)]

    with pytest.raises(AuthenticationError) as caught:
        await make_notifier().send(notification)

    assert str(status) in caught.value.message
    assert api_key not in caught.value.message


async def test_validation_error_is_rejected(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(422, body=b'{"message":"Message can not be empty."}')]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert type(caught.value) is RejectedError
    assert "422" in caught.value.message
    assert "can not be empty" in caught.value.message


async def test_a_hanging_endpoint_is_transient(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(202, delay=30.0)]
    started = time.monotonic()

    with pytest.raises(TransientError):
        await make_notifier(timeout=0.3).send(notification)

    assert time.monotonic() - started < 5


async def test_connection_refused_is_transient(make_notifier, notification):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(TransientError) as caught:
        await make_notifier(base_url=f"http://127.0.0.1:{port}").send(notification)

    assert "could not be reached" in caught.value.message


@pytest.mark.parametrize("bad", ["", "  ", "key\r\nX-Injected: 1"])
async def test_a_bad_api_key_is_a_configuration_error(make_notifier, receiver, notification, bad):
    notifier = make_notifier(api_key=Secret(bad))

    assert not (await notifier.check()).ok
    with pytest.raises(ConfigurationError):
        await notifier.send(notification)
    assert receiver.requests == []


async def test_check_sends_nothing(make_notifier, receiver):
    assert (await make_notifier().check()).ok
    assert receiver.requests == []


async def test_the_api_key_never_reaches_the_logs(
    make_notifier, receiver, notification, api_key, caplog
):
    notifier = make_notifier()
    logger = notifier.context.logger
    name = getattr(logger, "logger", logger).name
    receiver.script = [receiver.Reply(202), receiver.Reply(500)]

    with caplog.at_level(logging.DEBUG, logger=name):
        await notifier.send(notification)
        with pytest.raises(TransientError):
            await notifier.send(notification)

    ours = [r.getMessage() for r in caplog.records if r.name == name]
    assert any("create certctl/crt_42/expiry" in message for message in ours)
    assert all(api_key not in message for message in ours)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"priorities": {"critical": "P0"}}, "critical"),
        ({"priorities": {"urgent": "P1"}}, "urgent"),
        ({"base_url": "api.opsgenie.com"}, "base_url"),
        ({"tags": [""]}, "tags"),
        ({"min_severity": "page"}, "min_severity"),
        (
            {"families": [{"name": "a", "triggers": ["x"]}, {"name": "a", "triggers": ["y"]}]},
            "unique",
        ),
        (
            {"families": [{"name": "a", "triggers": ["x"], "resolves": ["x"]}]},
            "cannot both open and close",
        ),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {"api_key": "k", **overrides}

    with pytest.raises(ConfigurationError) as caught:
        decode_config(OpsgenieNotifierConfig, data)

    assert fragment in caught.value.message
