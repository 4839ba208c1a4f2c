"""The e-mail notifier: one plain-text message per notification, over SMTP.

``smtplib`` is blocking, so each delivery runs in a worker thread (``asyncio.to_thread``); the
socket timeout bounds every network step. The Message-ID is derived from the notification id, so
a retried delivery carries the same Message-ID and mail clients can fold duplicates.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar

from certctl_notifier_email.config import EmailNotifierConfig, SmtpSecurity
from certctl_sdk import (
    AuthenticationError,
    CheckResult,
    ConfigurationError,
    ConnectorError,
    Notification,
    Notifier,
    RejectedError,
    TransientError,
)

__all__ = ["EmailNotifier", "build_message"]


def _one_line(text: str) -> str:
    """Header-safe text: line breaks (header injection) become spaces."""
    return " ".join(text.split())


def build_message(
    config: EmailNotifierConfig, notification: Notification, date: str | None = None
) -> EmailMessage:
    """The message sent for ``notification``: plain text, with ``X-Certctl-*`` headers."""
    message = EmailMessage()
    message["Subject"] = _one_line(config.subject_prefix + notification.subject)
    message["From"] = config.from_address
    message["To"] = ", ".join(config.to)
    message["Date"] = date or format_datetime(notification.occurred_at)
    domain = config.from_address.rpartition("@")[2]
    message["Message-ID"] = f"<{_one_line(notification.id)}@{domain}>"
    message["X-Certctl-Event"] = _one_line(notification.event)
    message["X-Certctl-Severity"] = notification.severity.value
    message["X-Certctl-Notification-Id"] = _one_line(notification.id)
    facts = [
        f"Event:       {notification.event}",
        f"Severity:    {notification.severity.value}",
        f"Occurred at: {notification.occurred_at.isoformat()}",
    ]
    if notification.certificate_id:
        facts.append(f"Certificate: {notification.certificate_id}")
    facts.append(f"Notification id: {notification.id}")
    message.set_content(f"{notification.body}\n\n-- \n" + "\n".join(facts) + "\n")
    return message


def _smtp_error(where: str, exc: smtplib.SMTPResponseException) -> ConnectorError:
    """4xx replies are temporary (greylisting, full queue), 5xx permanent (RFC 5321 §4.2.1)."""
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
    detail = f"{where} answered {exc.smtp_code} {' '.join(text.split())[:200]}".rstrip()
    if 400 <= exc.smtp_code < 500:
        return TransientError(detail)
    return RejectedError(detail)


class EmailNotifier(Notifier[EmailNotifierConfig]):
    """Sends each notification as a plain-text e-mail through one SMTP server."""

    kind: ClassVar[str] = "email"
    display_name: ClassVar[str] = "E-mail (SMTP)"
    description: ClassVar[str] = (
        "Sends each notification as a plain-text e-mail through an SMTP server, with STARTTLS "
        "or implicit TLS and optional login."
    )
    Config = EmailNotifierConfig

    @property
    def _where(self) -> str:
        return f"SMTP server {self.config.host}:{self.config.port}"

    async def check(self) -> CheckResult:
        """Connect, secure the connection and log in, without sending anything."""
        try:
            password = await self._password()
            await asyncio.to_thread(self._session, None, password)
        except ConnectorError as exc:
            return CheckResult(ok=False, message=exc.message)
        return CheckResult(
            ok=True,
            message=f"connected to {self._where} and logged in (no message sent)"
            if self.config.username
            else f"connected to {self._where} (no message sent)",
            details={"host": self.config.host, "security": self.config.security.value},
        )

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification`` to every configured recipient."""
        password = await self._password()
        message = build_message(self.config, notification, format_datetime(self.context.clock()))
        refused = await asyncio.to_thread(self._session, message, password)
        if refused:
            # Some recipients have it already; raising would make the core send it to them again.
            self.context.logger.warning(
                "e-mail %s: %s refused recipient(s) %s",
                notification.id,
                self._where,
                ", ".join(sorted(refused)),
            )
        self.context.logger.debug("e-mail %s handed to %s", notification.id, self._where)

    async def _password(self) -> str | None:
        if self.config.password is None:
            return None
        password = await self.context.secrets.resolve(self.config.password)
        if not password:
            raise ConfigurationError("the SMTP password is empty")
        return password

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.config.ca_certificates)

    def _session(self, message: EmailMessage | None, password: str | None) -> dict[str, object]:
        """Blocking: connect, secure, log in, send ``message`` (None: only check); refusals."""
        cfg = self.config
        where = self._where
        try:
            if cfg.security == SmtpSecurity.TLS:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=self._tls_context()
                )
            else:
                smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
            with smtp:
                smtp.ehlo()
                if cfg.security == SmtpSecurity.STARTTLS:
                    if not smtp.has_extn("starttls"):
                        raise ConfigurationError(
                            f"{where} does not offer STARTTLS; use security tls or none"
                        )
                    smtp.starttls(context=self._tls_context())
                    smtp.ehlo()
                if cfg.username is not None and password is not None:
                    smtp.login(cfg.username, password)
                if message is None:
                    return {}
                refused = smtp.send_message(message, cfg.from_address, list(cfg.to))
                return dict(refused)
        except ConnectorError:
            raise
        except smtplib.SMTPAuthenticationError:
            raise AuthenticationError(f"{where} refused the login of {cfg.username!r}") from None
        except smtplib.SMTPNotSupportedError:
            raise ConfigurationError(
                f"{where} does not support login (AUTH) on this connection"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = f"{where} refused every recipient ({', '.join(sorted(exc.recipients))})"
            if codes and all(400 <= code < 500 for code in codes):
                raise TransientError(detail) from None
            raise RejectedError(detail) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(where, exc) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigurationError(
                f"the TLS certificate of {where} is not trusted ({exc.verify_message}); "
                "set ca_certificates for a private CA"
            ) from None
        except ssl.SSLError as exc:
            raise TransientError(f"TLS with {where} failed ({exc.reason or exc})") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPException) as exc:
            raise TransientError(f"{where} dropped the connection ({exc})") from None
        except TimeoutError:
            raise TransientError(f"{where} did not answer within {cfg.timeout:g} s") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise TransientError(f"{where} could not be reached ({reason})") from None
