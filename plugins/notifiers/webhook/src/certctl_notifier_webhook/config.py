"""Configuration of the webhook notifier."""

from __future__ import annotations

import re
from typing import Annotated

from msgspec import Meta

from certctl_sdk import ConnectorConfig, Secret

__all__ = ["RESERVED_HEADERS", "WebhookNotifierConfig"]

RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "host",
        "x-certctl-signature",
        "x-certctl-timestamp",
        "x-certctl-event",
        "x-certctl-delivery",
    }
)
"""Headers the notifier sets itself; letting configuration replace them would break signing."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class WebhookNotifierConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to POST notifications and how hard to try."""

    url: Annotated[
        str,
        Meta(
            pattern=r"^https?://[^\s/]+",
            description="Receiver URL (http or https). Notifications are POSTed here as JSON.",
        ),
    ]
    secret: Annotated[
        Secret,
        Meta(
            description=(
                "HMAC-SHA256 key. Each request carries "
                "X-Certctl-Signature: sha256=<hex HMAC of '<timestamp>.<body>'>."
            )
        ),
    ]
    headers: Annotated[
        dict[str, str],
        Meta(
            description=(
                "Extra request headers. They are stored and shown in clear, so do not put "
                "credentials here (the signature authenticates requests). Content-Type, Host "
                "and X-Certctl-* are set by the notifier and cannot be overridden."
            )
        ),
    ] = {}
    timeout: Annotated[
        float,
        Meta(gt=0, le=300, description="Seconds one delivery attempt may take in total."),
    ] = 10.0
    max_attempts: Annotated[
        int,
        Meta(
            ge=1,
            le=20,
            description=(
                "Attempts per send, counting the first. Exhausting them raises a transient error, "
                "so the core retries the notification later."
            ),
        ),
    ] = 3
    backoff_base: Annotated[
        float,
        Meta(
            ge=0,
            description="Seconds before the second attempt; doubles per attempt, with jitter.",
        ),
    ] = 1.0
    backoff_max: Annotated[
        float,
        Meta(
            ge=0,
            description=(
                "Longest wait between attempts, in seconds. A Retry-After longer than this ends "
                "the send early and hands the wait to the core's retry scheduler."
            ),
        ),
    ] = 30.0

    def __post_init__(self) -> None:
        # Checked here so a bad header is a configuration error, not a failure at 3 a.m.
        for name, value in self.headers.items():
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name} contains a line break")
        clashes = sorted(name for name in self.headers if name.lower() in RESERVED_HEADERS)
        if clashes:
            raise ValueError(f"headers may not set {', '.join(clashes)}")
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must be at least backoff_base")
