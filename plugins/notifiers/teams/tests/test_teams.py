"""The Microsoft Teams notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import logging
import socket
import time

import msgspec
import pytest

from certctl_notifier_teams import TeamsNotifierConfig
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    RejectedError,
    Secret,
    Severity,
    TransientError,
    decode_config,
)

TOKEN = "sEcReTt0kEn4tests"


async def test_adaptive_card_shape(make_notifier, receiver, notification, hook_path):
    receiver.script = [receiver.Reply(202, body=b"")]

    await make_notifier().send(notification)

    (request,) = receiver.requests
    assert request.path == hook_path
    assert request.headers["content-type"] == "application/json"
    payload = request.json
    assert payload["type"] == "message"
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, body, facts = card["body"]
    assert title["type"] == "TextBlock"
    assert title["text"] == "www.example.com expires in 7 days"
    assert title["color"] == "Warning"
    assert body["text"] == notification.body
    assert facts["type"] == "FactSet"
    assert facts["facts"] == [
        {"title": "Severity", "value": "warning"},
        {"title": "Event", "value": "certificate.expiring"},
        {"title": "Certificate", "value": "crt_42"},
        {"title": "Occurred at", "value": "2025-03-01T12:00:00+00:00"},
        {"title": "Notification", "value": "ntf_01JNTEAMS"},
    ]


async def test_legacy_messagecard_shape(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(200, body=b"1")]
    critical = msgspec.structs.replace(
        notification, severity=Severity.CRITICAL, certificate_id=None
    )

    await make_notifier(card="messagecard").send(critical)

    payload = receiver.requests[0].json
    assert payload["@type"] == "MessageCard"
    assert payload["@context"] == "https://schema.org/extensions"
    assert payload["themeColor"] == "D13438"
    assert payload["summary"] == "www.example.com expires in 7 days"
    (section,) = payload["sections"]
    assert section["activityTitle"] == "www.example.com expires in 7 days"
    assert section["text"] == notification.body
    assert section["markdown"] is True
    names = [fact["name"] for fact in section["facts"]]
    assert names == ["Severity", "Event", "Occurred at", "Notification"]
    assert {"name": "Severity", "value": "critical"} in section["facts"]


async def test_throttling_is_transient_with_retry_after(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "12"}, body=b"")]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert caught.value.retry_after == 12
    assert len(receiver.requests) == 1
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_transient(make_notifier, receiver, notification, status):
    receiver.script = [receiver.Reply(status)]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert str(status) in caught.value.message
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_signature_is_an_authentication_error(
    make_notifier, receiver, notification, status
):
    receiver.script = [
        receiver.Reply(status, body=b'{"error":{"code":"DirectApiAuthorizationRequired"}}')
    ]

    with pytest.raises(AuthenticationError) as caught:
        await make_notifier().send(notification)

    assert "DirectApiAuthorizationRequired" in caught.value.message
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize("status", [400, 404, 413])
async def test_other_client_errors_are_rejected(make_notifier, receiver, notification, status):
    receiver.script = [receiver.Reply(status, body=f"bad request for sig={TOKEN}".encode())]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert type(caught.value) is RejectedError
    assert str(status) in caught.value.message
    assert "bad request" in caught.value.message
    assert TOKEN not in caught.value.message


async def test_a_hanging_endpoint_is_transient(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(202, delay=30.0)]
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        await make_notifier(timeout=0.3).send(notification)

    assert time.monotonic() - started < 5
    assert "0.3 s" in caught.value.message


async def test_connection_refused_is_transient(make_notifier, notification):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/workflows/x/invoke?sig={TOKEN}"

    with pytest.raises(TransientError) as caught:
        await make_notifier(webhook_url=Secret(url)).send(notification)

    assert "could not be reached" in caught.value.message
    assert TOKEN not in caught.value.message


async def test_a_malformed_webhook_url_is_a_configuration_error(
    make_notifier, receiver, notification
):
    notifier = make_notifier(webhook_url=Secret("example.webhook.office.com/x"))

    with pytest.raises(ConfigurationError):
        await notifier.send(notification)
    assert not (await notifier.check()).ok
    assert receiver.requests == []


async def test_check_sends_nothing(make_notifier, receiver):
    result = await make_notifier().check()

    assert result.ok
    assert TOKEN not in str(result)
    assert receiver.requests == []


async def test_the_webhook_url_never_reaches_the_logs(
    make_notifier, receiver, notification, caplog
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
    assert any("posted" in message for message in ours)
    assert all(TOKEN not in message for message in ours)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"card": "hero"}, "card"),
        ({"timeout": -1}, "timeout"),
        ({"webhook_url": None}, "secret"),
        ({"theme": "dark"}, "theme"),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {"webhook_url": "https://example.webhook.office.com/x", **overrides}

    with pytest.raises(ConfigurationError) as caught:
        decode_config(TeamsNotifierConfig, data)

    assert fragment in caught.value.message
