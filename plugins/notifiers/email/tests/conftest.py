"""A real SMTP server (aiosmtpd) on loopback, with STARTTLS, implicit TLS and login options."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from certctl_notifier_email import EmailNotifier, EmailNotifierConfig, SmtpSecurity
from certctl_sdk import Notification, Secret, Severity
from certctl_sdk.models import SubjectAltNames
from certctl_sdk.testing import TestCA, make_context

USERNAME = "certctl"
PASSWORD = "smtp-pa55word-for-tests"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class Mailbox:
    """aiosmtpd handler: records envelopes and logins; ``rcpt_reply``/``data_reply`` refuse."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[str, bool]] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook name
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = login == USERNAME and auth_data.password.decode() == PASSWORD
        self.logins.append((login, ok))
        # handled=False: aiosmtpd then answers 535 itself (handled=True would send nothing).
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> tuple[str, Path, Path]:
    """A test CA and a leaf for localhost/127.0.0.1: (CA PEM, cert file, key file)."""
    ca = TestCA.create()
    leaf = ca.issue("localhost", sans=SubjectAltNames(dns=("localhost",), ip=("127.0.0.1",)))
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_text(leaf.certificate_pem + "".join(leaf.chain_pem))
    key.write_text(leaf.key_pem)
    return ca.certificate_pem, cert, key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_server(tls_files) -> Iterator[Callable[..., tuple[Controller, Mailbox]]]:
    """Start an SMTP server: ``mode`` starttls (required, with login), tls (implicit) or plain."""
    started: list[Controller] = []
    _, cert, key = tls_files

    def start(mode: str = "starttls", offer_tls: bool = True) -> tuple[Controller, Mailbox]:
        mailbox = Mailbox()
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        options: dict[str, Any] = {
            "authenticator": mailbox.authenticate,
            "auth_require_tls": True,
            # smtplib retries a refused PLAIN login with LOGIN; offering PLAIN only keeps
            # one recorded attempt per login.
            "auth_exclude_mechanism": ["LOGIN"],
        }
        if mode == "starttls" and offer_tls:
            options.update(tls_context=server_tls, require_starttls=True)
        if mode == "tls":
            # The whole connection is TLS; aiosmtpd only counts STARTTLS as "TLS" for AUTH.
            options.update(ssl_context=server_tls, auth_require_tls=False)
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=_free_port(),
            server_hostname="localhost",
            ready_timeout=5,
            **options,
        )
        controller.start()
        started.append(controller)
        return controller, mailbox

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def make_notifier(tls_files):
    """A notifier for a server from ``smtp_server``; ``overrides`` tune its config."""
    ca_pem, _, _ = tls_files

    def build(controller: Controller, **overrides: object) -> EmailNotifier:
        settings: dict[str, object] = {
            "host": "127.0.0.1",
            "port": controller.port,
            "security": "starttls",
            "username": USERNAME,
            "password": Secret(PASSWORD),
            "from_address": "certctl@example.com",
            "to": ["ops@example.com", "pki@example.org"],
            "ca_certificates": ca_pem,
            "timeout": 5.0,
        }
        settings.update(overrides)
        settings["security"] = SmtpSecurity(settings["security"])
        config = EmailNotifierConfig(**settings)  # type: ignore[arg-type]
        return EmailNotifier(config, make_context(clock=lambda: NOW))

    return build


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def notification() -> Notification:
    return Notification(
        id="ntf_01JNEMAIL",
        event="certificate.expiring",
        subject="www.example.com expires in 7 days",
        body="The certificate for www.example.com expires on 2025-03-08.",
        severity=Severity.WARNING,
        occurred_at=NOW,
        certificate_id="crt_42",
        data={"days_left": 7},
    )
