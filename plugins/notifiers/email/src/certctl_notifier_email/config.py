"""Configuration of the e-mail (SMTP) notifier."""

from __future__ import annotations

import enum
import re
from typing import Annotated

from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret

__all__ = ["EmailNotifierConfig", "SmtpSecurity"]

# Deliberately simple: one addr-spec, no display name, no whitespace or line breaks (which is
# what stops header injection); the SMTP server is the judge of everything finer.
_ADDRESS = r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$"
_HOST = re.compile(r"^[A-Za-z0-9.:\[\]-]+$")


class SmtpSecurity(enum.StrEnum):
    """How the connection to the SMTP server is protected."""

    STARTTLS = "starttls"
    """Plain connect, then upgrade with STARTTLS before anything else (port 587)."""
    TLS = "tls"
    """TLS from the first byte, "implicit TLS" or SMTPS (port 465)."""
    NONE = "none"
    """No encryption: only for a relay on the same host or network; login is refused."""


Address = Annotated[str, Meta(pattern=_ADDRESS, max_length=254)]


class EmailNotifierConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which SMTP server to hand notifications to, and who receives them."""

    host: Annotated[
        str, Meta(min_length=1, max_length=253, description="SMTP server host name or IP.")
    ]
    port: Annotated[
        int,
        Meta(ge=1, le=65535, description="SMTP server port: 587 for STARTTLS, 465 for TLS."),
    ] = 587
    security: Annotated[
        SmtpSecurity,
        Meta(
            description=(
                "starttls (upgrade after connecting; the server must offer it), tls (implicit "
                "TLS from the first byte) or none (plain text; login is then refused)."
            )
        ),
    ] = SmtpSecurity.STARTTLS
    username: Annotated[
        str | None,
        Meta(description="Login name for SMTP AUTH; omit for a relay that needs no login."),
    ] = None
    password: Annotated[
        Secret | None,
        Meta(description="Password for SMTP AUTH; required with username."),
    ] = None
    from_address: Annotated[
        Address, Meta(description="Envelope sender and From: address, e.g. certctl@example.com.")
    ]
    to: Annotated[
        list[Address],
        Meta(min_length=1, max_length=100, description="Recipient addresses (one or more)."),
    ]
    subject_prefix: Annotated[
        str,
        Meta(max_length=100, description="Put before every subject, e.g. '[certctl] '."),
    ] = "[certctl] "
    ca_certificates: Annotated[
        str | None,
        Meta(
            description=(
                "PEM certificates to trust for the server's TLS certificate instead of the "
                "system store (for a private CA)."
            )
        ),
    ] = None
    timeout: Annotated[
        float,
        Meta(gt=0, le=300, description="Seconds each network step (connect, read) may take."),
    ] = 30.0

    def __post_init__(self) -> None:
        if not _HOST.match(self.host):
            raise ValueError(f"host {self.host!r} is not a host name or IP address")
        if "\r" in self.subject_prefix or "\n" in self.subject_prefix:
            raise ValueError("subject_prefix contains a line break")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        if self.username is not None and self.security == SmtpSecurity.NONE:
            raise ValueError("security none would send the password in clear; use starttls or tls")
        if self.ca_certificates is not None and "-----BEGIN CERTIFICATE-----" not in (
            self.ca_certificates
        ):
            raise ValueError("ca_certificates holds no PEM certificate")
