"""The e-mail notifier against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import logging
import socket

import msgspec
import pytest

from certctl_notifier_email import EmailNotifierConfig
from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    RejectedError,
    Secret,
    TransientError,
    decode_config,
)


def _parse(content: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_starttls_login_and_delivery(smtp_server, make_notifier, notification):
    controller, mailbox = smtp_server("starttls")  # the server refuses MAIL before STARTTLS

    await make_notifier(controller).send(notification)

    (envelope,) = mailbox.envelopes
    assert mailbox.logins == [("certctl", True)]
    assert envelope.mail_from == "certctl@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "pki@example.org"]
    message = _parse(envelope.content)
    assert message["Subject"] == "[certctl] www.example.com expires in 7 days"
    assert message["From"] == "certctl@example.com"
    assert message["To"] == "ops@example.com, pki@example.org"
    assert message["Message-ID"] == "<ntf_01JNEMAIL@example.com>"
    assert message["X-Certctl-Event"] == "certificate.expiring"
    assert message["X-Certctl-Severity"] == "warning"
    assert message["Date"] == "Sat, 01 Mar 2025 12:00:00 +0000"
    text = message.get_content()
    assert text.startswith("The certificate for www.example.com expires on 2025-03-08.")
    assert "Certificate: crt_42" in text


async def test_implicit_tls_delivery(smtp_server, make_notifier, notification):
    controller, mailbox = smtp_server("tls")

    await make_notifier(controller, security="tls", subject_prefix="").send(notification)

    (envelope,) = mailbox.envelopes
    assert mailbox.logins == [("certctl", True)]
    assert _parse(envelope.content)["Subject"] == "www.example.com expires in 7 days"


async def test_plain_relay_without_login(smtp_server, make_notifier, notification):
    controller, mailbox = smtp_server("plain")

    await make_notifier(controller, security="none", username=None, password=None).send(
        notification
    )

    assert len(mailbox.envelopes) == 1
    assert mailbox.logins == []


async def test_wrong_password_is_an_authentication_error(
    smtp_server, make_notifier, notification, password
):
    controller, mailbox = smtp_server("starttls")

    with pytest.raises(AuthenticationError) as caught:
        await make_notifier(controller, password=Secret("not-the-password")).send(notification)

    assert mailbox.logins == [("certctl", False)]
    assert mailbox.envelopes == []
    assert "not-the-password" not in caught.value.message
    assert password not in caught.value.message


async def test_connection_refused_is_transient(make_notifier, notification):
    class Nowhere:
        with socket.socket() as sock:  # a port nobody listens on once the socket is closed
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]

    with pytest.raises(TransientError) as caught:
        await make_notifier(Nowhere).send(notification)

    assert "could not be reached" in caught.value.message


async def test_untrusted_server_certificate_is_a_configuration_error(
    smtp_server, make_notifier, notification
):
    controller, mailbox = smtp_server("starttls")

    with pytest.raises(ConfigurationError) as caught:
        await make_notifier(controller, ca_certificates=None).send(notification)

    assert "not trusted" in caught.value.message
    assert mailbox.logins == []
    assert mailbox.envelopes == []


async def test_starttls_missing_is_refused_not_downgraded(smtp_server, make_notifier, notification):
    controller, mailbox = smtp_server("starttls", offer_tls=False)

    with pytest.raises(ConfigurationError) as caught:
        await make_notifier(controller).send(notification)

    assert "does not offer STARTTLS" in caught.value.message
    assert mailbox.logins == []


@pytest.mark.parametrize(
    ("where", "reply", "error"),
    [
        ("data", "451 4.3.0 try again later", TransientError),
        ("data", "554 5.7.1 message refused", RejectedError),
        ("rcpt", "550 5.1.1 no such user", RejectedError),
        ("rcpt", "450 4.2.0 mailbox busy", TransientError),
    ],
)
async def test_server_refusals_map_by_reply_class(
    smtp_server, make_notifier, notification, where, reply, error
):
    controller, mailbox = smtp_server("starttls")
    setattr(mailbox, f"{where}_reply", reply)

    with pytest.raises(error) as caught:
        await make_notifier(controller).send(notification)

    assert type(caught.value) is error
    assert mailbox.envelopes == []


async def test_header_injection_through_the_subject_is_neutralised(
    smtp_server, make_notifier, notification
):
    controller, mailbox = smtp_server("starttls")
    evil = msgspec.structs.replace(notification, subject="hi\r\nBcc: thief@evil.example")

    await make_notifier(controller).send(evil)

    (envelope,) = mailbox.envelopes
    message = _parse(envelope.content)
    assert message["Bcc"] is None
    assert message["Subject"] == "[certctl] hi Bcc: thief@evil.example"
    assert envelope.rcpt_tos == ["ops@example.com", "pki@example.org"]


async def test_check_logs_in_without_sending(smtp_server, make_notifier):
    controller, mailbox = smtp_server("starttls")

    good = await make_notifier(controller).check()
    bad = await make_notifier(controller, password=Secret("wrong")).check()

    assert good.ok
    assert not bad.ok
    assert "refused the login" in bad.message
    assert mailbox.logins == [("certctl", True), ("certctl", False)]
    assert mailbox.envelopes == []


async def test_the_password_never_reaches_the_logs(
    smtp_server, make_notifier, notification, password, caplog
):
    controller, mailbox = smtp_server("starttls")
    mailbox.rcpt_reply = None
    notifier = make_notifier(controller)
    logger = notifier.context.logger
    name = getattr(logger, "logger", logger).name

    # Set the level on the notifier's own logger: a parent (e.g. "certctl", which the server
    # configures) may otherwise filter DEBUG records before they reach the capture handler.
    with caplog.at_level(logging.DEBUG, logger=name):
        await notifier.send(notification)

    assert any(r.name == name for r in caplog.records)
    assert all(password not in r.getMessage() for r in caplog.records)


async def test_an_empty_password_is_a_configuration_error(smtp_server, make_notifier, notification):
    controller, mailbox = smtp_server("starttls")

    with pytest.raises(ConfigurationError):
        await make_notifier(controller, password=Secret("")).send(notification)
    assert not (await make_notifier(controller, password=Secret("")).check()).ok

    assert mailbox.logins == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"username": "u"}, "together"),
        ({"username": "u", "password": "p", "security": "none"}, "in clear"),
        ({"to": []}, "to"),
        ({"to": ["ops@example.com\r\nBcc: x@y.z"]}, "to"),
        ({"from_address": "not-an-address"}, "from_address"),
        ({"subject_prefix": "[x]\n"}, "line break"),
        ({"host": "mail example com"}, "host"),
        ({"security": "ssl3"}, "security"),
        ({"ca_certificates": "garbage"}, "ca_certificates"),
        ({"port": 0}, "port"),
    ],
)
def test_invalid_configuration_is_refused(overrides, fragment):
    data = {
        "host": "smtp.example.com",
        "from_address": "certctl@example.com",
        "to": ["ops@example.com"],
        **overrides,
    }

    with pytest.raises(ConfigurationError) as caught:
        decode_config(EmailNotifierConfig, data)

    assert fragment in caught.value.message
