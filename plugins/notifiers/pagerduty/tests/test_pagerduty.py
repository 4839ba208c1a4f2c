"""The PagerDuty notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import logging
import socket
import time

import msgspec
import pytest

from certctl_notifier_pagerduty import PagerDutyNotifierConfig
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    RejectedError,
    Secret,
    Severity,
    TransientError,
    decode_config,
)

ACCEPTED = b'{"status":"success","message":"Event processed","dedup_key":"x"}'


async def test_trigger_event_shape(make_notifier, receiver, notification, routing_key):
    receiver.script = [receiver.Reply(202, body=ACCEPTED)]

    await make_notifier().send(notification)

    (request,) = receiver.requests
    assert request.path == "/v2/enqueue"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": "certctl/crt_42/expiry",
        "client": "certctl",
        "payload": {
            "summary": "www.example.com expires in 7 days",
            "source": "certctl",
            "severity": "warning",
            "timestamp": "2025-03-01T12:00:00+00:00",
            "class": "certificate.expiring",
            "component": "crt_42",
            "custom_details": {
                "body": "The certificate for www.example.com expires on 2025-03-08.",
                "event": "certificate.expiring",
                "notification_id": "ntf_01JNPAGER",
                "certificate_id": "crt_42",
                "data": {"days_left": 7},
            },
        },
    }


async def test_renewal_resolves_the_expiry_alert(
    make_notifier, receiver, notification, routing_key
):
    notifier = make_notifier()
    renewed = msgspec.structs.replace(
        notification, id="ntf_02", event="certificate.renewed", severity=Severity.INFO
    )

    await notifier.send(notification)
    await notifier.send(notification)  # a second warning updates the same alert
    await notifier.send(renewed)

    trigger, again, resolve = (r.json for r in receiver.requests)
    assert trigger["dedup_key"] == again["dedup_key"] == "certctl/crt_42/expiry"
    assert resolve == {
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": "certctl/crt_42/expiry",
    }


async def test_deployment_failure_is_critical_and_resolved_by_deployment(
    make_notifier, receiver, notification
):
    notifier = make_notifier()
    failed = msgspec.structs.replace(
        notification, event="deployment.failed", severity=Severity.CRITICAL
    )
    deployed = msgspec.structs.replace(
        notification, event="certificate.deployed", severity=Severity.INFO
    )

    await notifier.send(failed)
    await notifier.send(deployed)

    trigger, resolve = (r.json for r in receiver.requests)
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["dedup_key"] == "certctl/crt_42/deployment"
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == "certctl/crt_42/deployment"


async def test_below_min_severity_sends_nothing(make_notifier, receiver, notification):
    info = msgspec.structs.replace(
        notification, event="certificate.revoked", severity=Severity.INFO
    )

    await make_notifier().send(info)
    assert receiver.requests == []

    await make_notifier(min_severity="info").send(info)
    (request,) = receiver.requests
    assert request.json["payload"]["severity"] == "info"
    assert request.json["dedup_key"] == "certctl/crt_42/certificate.revoked"


async def test_without_a_certificate_the_notification_id_is_the_key(
    make_notifier, receiver, notification
):
    job = msgspec.structs.replace(
        notification, event="job.failed", severity=Severity.CRITICAL, certificate_id=None
    )
    orphan_recovery = msgspec.structs.replace(
        notification, event="certificate.renewed", certificate_id=None
    )

    await make_notifier().send(job)
    await make_notifier().send(orphan_recovery)  # nothing identifies an alert to resolve

    (request,) = receiver.requests
    assert request.json["dedup_key"] == "certctl/ntf_01JNPAGER"
    assert "component" not in request.json["payload"]


async def test_custom_families_and_a_base_url_with_a_path(receiver, http, notification):
    from certctl_notifier_pagerduty import PagerDutyNotifier
    from certctl_sdk.testing import make_context

    config = decode_config(
        PagerDutyNotifierConfig,
        {
            "routing_key": "k",
            "base_url": receiver.base_url + "/proxy/pd/",
            "source": "certctl-prod",
            "families": [
                {
                    "name": "lifetime",
                    "triggers": ["certificate.expiring"],
                    "resolves": ["certificate.revoked"],
                }
            ],
        },
    )
    notifier = PagerDutyNotifier(config, make_context(http=http))
    revoked = msgspec.structs.replace(notification, event="certificate.revoked")

    await notifier.send(notification)
    await notifier.send(revoked)

    trigger, resolve = receiver.requests
    assert trigger.path == resolve.path == "/proxy/pd/v2/enqueue"
    assert trigger.json["dedup_key"] == resolve.json["dedup_key"] == "certctl/crt_42/lifetime"
    assert trigger.json["payload"]["source"] == "certctl-prod"
    assert resolve.json["event_action"] == "resolve"


async def test_throttling_is_transient_with_retry_after(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "60"}, body=b"")]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert caught.value.retry_after == 60
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(make_notifier, receiver, notification, status):
    receiver.script = [receiver.Reply(status)]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert str(status) in caught.value.message
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials(make_notifier, receiver, notification, status, routing_key):
    receiver.script = [receiver.Reply(status, body=b'{"status":"unauthorized"}')]

    with pytest.raises(AuthenticationError) as caught:
        await make_notifier().send(notification)

    assert routing_key not in caught.value.message


async def test_invalid_event_is_rejected_and_an_echoed_key_is_masked(
    make_notifier, receiver, notification, routing_key
):
    body = f'{{"status":"invalid event","errors":["bad routing_key {routing_key}"]}}'
    receiver.script = [receiver.Reply(400, body=body.encode())]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert type(caught.value) is RejectedError
    assert "400" in caught.value.message
    assert "invalid event" in caught.value.message
    assert routing_key not in caught.value.message


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


async def test_empty_routing_key_and_check(make_notifier, receiver, notification):
    assert (await make_notifier().check()).ok
    notifier = make_notifier(routing_key=Secret(" "))
    assert not (await notifier.check()).ok
    with pytest.raises(ConfigurationError):
        await notifier.send(notification)
    assert receiver.requests == []


async def test_the_routing_key_never_reaches_the_logs(
    make_notifier, receiver, notification, routing_key, caplog
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
    assert any("trigger certctl/crt_42/expiry" in message for message in ours)
    assert all(routing_key not in message for message in ours)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"base_url": "ftp://events.pagerduty.com"}, "base_url"),
        ({"min_severity": "urgent"}, "min_severity"),
        (
            {"families": [{"name": "a", "triggers": ["x"]}, {"name": "a", "triggers": ["y"]}]},
            "unique",
        ),
        (
            {"families": [{"name": "a", "triggers": ["x"], "resolves": ["x"]}]},
            "cannot both open and close",
        ),
        ({"families": [{"name": "A B", "triggers": ["x"]}]}, "name"),
        ({"families": [{"name": "a", "triggers": []}]}, "triggers"),
        ({"severity": "high"}, "severity"),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {"routing_key": "k", **overrides}

    with pytest.raises(ConfigurationError) as caught:
        decode_config(PagerDutyNotifierConfig, data)

    assert fragment in caught.value.message
