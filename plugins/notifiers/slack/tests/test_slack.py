"""The Slack notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import logging
import socket
import time

import msgspec
import pytest

from certctl_notifier_slack import SlackNotifierConfig
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


async def test_block_kit_message_shape(make_notifier, receiver, notification, hook_path):
    await make_notifier().send(notification)

    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == hook_path
    assert request.headers["content-type"] == "application/json"
    payload = request.json
    assert payload["text"] == ":warning: www.example.com expires in 7 days"
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":warning: www.example.com expires in 7 days",
            "emoji": True,
        },
    }
    assert section["type"] == "section"
    assert section["text"] == {
        "type": "mrkdwn",
        "text": "The certificate for &lt;www.example.com&gt; expires on 2025-03-08 &amp; "
        "needs renewal.",
    }
    assert context["type"] == "context"
    (element,) = context["elements"]
    assert element["type"] == "mrkdwn"
    assert "*Severity:* warning" in element["text"]
    assert "*Event:* `certificate.expiring`" in element["text"]
    assert "*Certificate:* `crt_42`" in element["text"]
    assert "*Notification:* `ntf_01JNSLACK`" in element["text"]
    assert not {"channel", "username", "icon_emoji"} & payload.keys()


async def test_text_format_with_overrides(make_notifier, receiver, notification):
    critical = msgspec.structs.replace(notification, severity=Severity.CRITICAL)

    await make_notifier(
        format="text", channel="#pki-alerts", username="certctl", icon_emoji=":lock:"
    ).send(critical)

    payload = receiver.requests[0].json
    assert "blocks" not in payload
    assert payload["text"].startswith(":rotating_light: *www.example.com expires in 7 days*\n")
    assert "*Severity:* critical" in payload["text"]
    assert payload["channel"] == "#pki-alerts"
    assert payload["username"] == "certctl"
    assert payload["icon_emoji"] == ":lock:"


async def test_throttling_is_transient_with_retry_after(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "30"}, body=b"rate_limited")]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert caught.value.retry_after == 30
    assert len(receiver.requests) == 1  # one attempt: the core's scheduler does the waiting
    assert "429" in caught.value.message
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(make_notifier, receiver, notification, status):
    receiver.script = [
        receiver.Reply(status, headers={"Retry-After": "Sat, 01 Mar 2025 12:05:00 GMT"})
    ]

    with pytest.raises(TransientError) as caught:
        await make_notifier().send(notification)

    assert str(status) in caught.value.message
    assert caught.value.retry_after == 300  # five minutes after the notifier's clock


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_token_is_an_authentication_error(
    make_notifier, receiver, notification, status
):
    receiver.script = [receiver.Reply(status, body=b"invalid_token")]

    with pytest.raises(AuthenticationError) as caught:
        await make_notifier().send(notification)

    assert "invalid_token" in caught.value.message
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, b"invalid_payload"), (404, b"no_service"), (410, b"channel_is_archived")],
)
async def test_other_client_errors_are_rejected(
    make_notifier, receiver, notification, status, body
):
    receiver.script = [receiver.Reply(status, body=body)]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert type(caught.value) is RejectedError
    assert str(status) in caught.value.message
    assert body.decode() in caught.value.message
    assert TOKEN not in caught.value.message


async def test_an_error_body_echoing_the_url_is_masked(make_notifier, receiver, notification):
    receiver.script = [
        receiver.Reply(
            400, body=f"bad hook {receiver.base_url}/services/T0001/B0002/{TOKEN}".encode()
        )
    ]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert TOKEN not in caught.value.message


async def test_a_hanging_endpoint_is_transient(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(200, delay=30.0)]
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        await make_notifier(timeout=0.3).send(notification)

    assert time.monotonic() - started < 5
    assert "0.3 s" in caught.value.message


async def test_connection_refused_is_transient(make_notifier, notification):
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/T0001/B0002/{TOKEN}"

    with pytest.raises(TransientError) as caught:
        await make_notifier(webhook_url=Secret(url)).send(notification)

    assert "could not be reached" in caught.value.message
    assert TOKEN not in caught.value.message


async def test_a_malformed_webhook_url_is_a_configuration_error(
    make_notifier, receiver, notification
):
    notifier = make_notifier(webhook_url=Secret("hooks.slack.com/services/x"))

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
    name = getattr(logger, "logger", logger).name  # a LoggerAdapter wraps the logger
    receiver.script = [receiver.Reply(200), receiver.Reply(500)]

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
        ({"format": "html"}, "format"),
        ({"channel": "#has space"}, "channel"),
        ({"icon_emoji": "lock"}, "icon_emoji"),
        ({"timeout": 0}, "timeout"),
        ({"webhook_url": 42}, "secret"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {"webhook_url": "https://hooks.slack.com/services/T/B/x", **overrides}

    with pytest.raises(ConfigurationError) as caught:
        decode_config(SlackNotifierConfig, data)

    assert fragment in caught.value.message
