"""The webhook notifier against a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import time
from datetime import timedelta

import msgspec
import pytest

from certctl_notifier_webhook import WebhookNotifierConfig, sign, verify_signature
from certctl_sdk import (
    ConfigurationError,
    Notification,
    RejectedError,
    Secret,
    TransientError,
    decode_config,
)


async def test_delivery_is_signed_and_verifies_at_the_receiver(
    make_notifier, receiver, notification, secret, now
):
    notifier = make_notifier(headers={"X-Tenant": "blue"})

    await notifier.send(notification)

    (request,) = receiver.requests
    headers = request.headers
    assert request.path == "/hooks/certctl?token=abc"
    assert headers["content-type"] == "application/json"
    assert headers["x-certctl-event"] == "certificate.renewed"
    assert headers["x-certctl-delivery"] == notification.id
    assert headers["x-certctl-timestamp"] == str(int(now.timestamp()))
    assert headers["x-tenant"] == "blue"
    assert verify_signature(
        secret,
        headers["x-certctl-timestamp"],
        request.body,
        headers["x-certctl-signature"],
        now=now.timestamp(),
    )
    assert not verify_signature(
        "another-key",
        headers["x-certctl-timestamp"],
        request.body,
        headers["x-certctl-signature"],
        now=now.timestamp(),
    )
    assert msgspec.json.decode(request.body, type=Notification) == notification
    # Independently of sign(): the documented recipe a non-Python receiver would follow.
    signed = headers["x-certctl-timestamp"].encode() + b"." + request.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-certctl-signature"] == f"sha256={expected}"


async def test_503_twice_then_200_is_three_deliveries_of_one_id(
    make_notifier, receiver, notification, secret, now
):
    receiver.script = [receiver.Reply(503), receiver.Reply(503), receiver.Reply(200)]

    await make_notifier(max_attempts=3).send(notification)

    assert len(receiver.requests) == 3
    assert {r.headers["x-certctl-delivery"] for r in receiver.requests} == {notification.id}
    assert len({r.body for r in receiver.requests}) == 1
    for r in receiver.requests:
        assert verify_signature(
            secret,
            r.headers["x-certctl-timestamp"],
            r.body,
            r.headers["x-certctl-signature"],
            now=now.timestamp(),
        )


async def test_400_is_rejected_after_one_attempt(make_notifier, receiver, notification, secret):
    receiver.script = [receiver.Reply(400, body=b'{"error": "unknown event"}')]

    with pytest.raises(RejectedError) as caught:
        await make_notifier(max_attempts=5).send(notification)

    assert len(receiver.requests) == 1
    assert "400" in caught.value.message
    assert "unknown event" in caught.value.message
    assert secret not in caught.value.message
    assert "token=abc" not in caught.value.message  # URL paths/queries may carry tokens


@pytest.mark.parametrize("status", [408, 429, 500, 502])
async def test_retryable_statuses_end_in_transient_error(
    make_notifier, receiver, notification, secret, status
):
    receiver.script = [receiver.Reply(status)] * 3

    with pytest.raises(TransientError) as caught:
        await make_notifier(max_attempts=3).send(notification)

    assert len(receiver.requests) == 3
    assert str(status) in caught.value.message
    assert secret not in caught.value.message


async def test_hanging_receiver_is_retried_then_transient(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(200, delay=30.0)] * 2
    started = time.monotonic()

    with pytest.raises(TransientError) as caught:
        await make_notifier(timeout=0.3, max_attempts=2).send(notification)

    assert time.monotonic() - started < 5
    assert len(receiver.requests) == 2
    assert "0.3 s" in caught.value.message


async def test_connection_refused_is_retried_then_transient(make_notifier, notification):
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(TransientError) as caught:
        await make_notifier(url=f"http://127.0.0.1:{port}/x", max_attempts=2).send(notification)

    assert "could not be reached" in caught.value.message


async def test_retry_after_is_honoured(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "1"}), receiver.Reply(200)]
    started = time.monotonic()

    await make_notifier(backoff_base=0.01, backoff_max=2.0).send(notification)

    assert time.monotonic() - started >= 0.9
    assert len(receiver.requests) == 2


async def test_long_retry_after_is_handed_to_the_core(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(429, headers={"Retry-After": "3600"})]

    with pytest.raises(TransientError) as caught:
        async with asyncio.timeout(5):  # a notifier that obeys 3600 s fails here, not hangs
            await make_notifier(max_attempts=5, backoff_max=1.0).send(notification)

    assert len(receiver.requests) == 1
    assert caught.value.retry_after == 3600


async def test_retry_after_http_date_is_understood(make_notifier, receiver, notification):
    receiver.script = [
        receiver.Reply(503, headers={"Retry-After": "Sat, 01 Mar 2025 13:00:00 GMT"})
    ]

    with pytest.raises(TransientError) as caught:
        await make_notifier(max_attempts=3).send(notification)

    assert caught.value.retry_after == 3600  # one hour after the notifier's clock


async def test_redirects_are_not_followed(make_notifier, receiver, notification):
    receiver.script = [receiver.Reply(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})]

    with pytest.raises(RejectedError) as caught:
        await make_notifier().send(notification)

    assert "302" in caught.value.message
    assert len(receiver.requests) == 1


async def test_the_secret_never_reaches_the_logs(
    make_notifier, receiver, notification, secret, caplog
):
    receiver.script = [receiver.Reply(500), receiver.Reply(500)]
    notifier = make_notifier(max_attempts=2)
    logger = notifier.context.logger
    name = getattr(logger, "logger", logger).name  # a LoggerAdapter wraps the logger

    with caplog.at_level(logging.DEBUG, logger=name), pytest.raises(TransientError):
        await notifier.send(notification)

    ours = [r.getMessage() for r in caplog.records if r.name == name]
    assert any("retrying" in message for message in ours)
    assert all(secret not in message for message in ours)
    assert all("token=abc" not in message for message in ours)


async def test_an_empty_secret_is_a_configuration_error(make_notifier, receiver, notification):
    with pytest.raises(ConfigurationError):
        await make_notifier(secret=Secret("")).send(notification)
    assert receiver.requests == []
    result = await make_notifier(secret=Secret("")).check()
    assert not result.ok


async def test_check_sends_nothing(make_notifier, receiver):
    result = await make_notifier().check()

    assert result.ok
    assert receiver.requests == []


def test_verify_signature_refuses_tampering_and_stale_timestamps(secret):
    body = b'{"id":"n1"}'
    ts = "1700000000"
    good = "sha256=" + hmac.new(secret.encode(), b"1700000000." + body, "sha256").hexdigest()
    assert sign(secret, ts, body) == good

    assert verify_signature(secret, ts, body, good, now=1700000100)
    assert not verify_signature(secret, ts, body + b" ", good, now=1700000100)
    assert not verify_signature("other", ts, body, good, now=1700000100)
    assert not verify_signature(secret, "1700000001", body, good, now=1700000100)
    assert not verify_signature(secret, ts, body, good, now=1700000000 + 301)
    assert not verify_signature(secret, ts, body, good, now=1700000000 - 301)
    assert not verify_signature(secret, ts, body, good.removeprefix("sha256="), now=1700000000)
    assert not verify_signature(secret, "17e8", body, good, now=1700000000)
    assert verify_signature(secret, ts, body, good, tolerance_seconds=10**9)


async def test_each_attempt_is_signed_with_its_own_timestamp(
    make_notifier, receiver, notification, secret, now
):
    ticks = iter(range(100))  # a clock that moves 60 s per reading
    notifier = make_notifier(clock=lambda: now + timedelta(seconds=60 * next(ticks)))
    receiver.script = [receiver.Reply(503), receiver.Reply(200)]

    await notifier.send(notification)

    stamps = [r.headers["x-certctl-timestamp"] for r in receiver.requests]
    assert len(set(stamps)) == 2
    for r in receiver.requests:
        stamp = r.headers["x-certctl-timestamp"]
        assert verify_signature(
            secret, stamp, r.body, r.headers["x-certctl-signature"], now=int(stamp)
        )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"headers": {"X-Certctl-Signature": "forged"}}, "headers may not set"),
        ({"headers": {"content-type": "text/plain"}}, "headers may not set"),
        ({"headers": {"Bad Name": "x"}}, "not a valid HTTP token"),
        ({"headers": {"X-Ok": "a\r\nInjected: 1"}}, "line break"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"backoff_base": 5, "backoff_max": 1}, "backoff_max"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {"url": "https://hooks.example.com/certctl", "secret": "k", **overrides}

    with pytest.raises(ConfigurationError) as caught:
        decode_config(WebhookNotifierConfig, data)

    assert fragment in caught.value.message
