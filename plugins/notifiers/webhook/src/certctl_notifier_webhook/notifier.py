"""The webhook notifier: each notification is POSTed as signed JSON, with bounded retries.

Receivers authenticate a request by recomputing the HMAC over ``"<timestamp>.<body>"`` (see
:func:`verify_signature`); the timestamp is signed too, so a captured request cannot be replayed
outside the receiver's tolerance window. ``X-Certctl-Delivery`` is the notification's id and is
the same on every attempt, so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import msgspec

from certctl_notifier_webhook.config import WebhookNotifierConfig
from certctl_sdk import (
    CheckResult,
    ConfigurationError,
    Notification,
    Notifier,
    RejectedError,
    TransientError,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookNotifier",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Certctl-Signature"
TIMESTAMP_HEADER = "X-Certctl-Timestamp"
EVENT_HEADER = "X-Certctl-Event"
DELIVERY_HEADER = "X-Certctl-Delivery"

_SNIPPET_BYTES = 200
_jitter = random.SystemRandom()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Certctl-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """Whether ``header`` is a valid signature of ``body`` sent at ``timestamp``.

    For receivers. ``timestamp`` and ``header`` are the raw ``X-Certctl-Timestamp`` and
    ``X-Certctl-Signature`` values and ``body`` the raw request body (verify before parsing it).
    Timestamps further than ``tolerance_seconds`` from ``now`` (Unix seconds, default the current
    time) are refused, which bounds replays. The comparison is constant-time.
    """
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).encode()
    return hmac.compare_digest(expected, header.strip().encode())


class _Retry(msgspec.Struct, frozen=True):
    """Why an attempt failed in a way worth repeating, and any wait the receiver asked for."""

    reason: str
    retry_after: float | None = None


class WebhookNotifier(Notifier[WebhookNotifierConfig]):
    """POSTs notifications to one URL, signed with HMAC-SHA256."""

    kind: ClassVar[str] = "webhook"
    display_name: ClassVar[str] = "Webhook"
    description: ClassVar[str] = (
        "POSTs each notification as JSON to a URL, signed with HMAC-SHA256, retrying 5xx, "
        "429 and network failures with exponential back-off."
    )
    Config = WebhookNotifierConfig

    async def check(self) -> CheckResult:
        """Resolve the secret without sending anything: a test POST would be a real delivery."""
        key = await self.context.secrets.resolve(self.config.secret)
        if not key:
            return CheckResult(ok=False, message="the webhook secret is empty")
        return CheckResult(
            ok=True,
            message="configuration is valid (no request sent)",
            details={"url": _display_url(self.config.url)},
        )

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``, retrying transient failures up to ``max_attempts`` times."""
        key = await self.context.secrets.resolve(self.config.secret)
        if not key:
            raise ConfigurationError("the webhook secret is empty")
        body = msgspec.json.encode(notification)
        where = _display_url(self.config.url)
        attempts = self.config.max_attempts
        retry: _Retry | None = None
        for attempt in range(1, attempts + 1):
            retry = await self._attempt(notification, body, key, where)
            if retry is None:
                self.context.logger.debug(
                    "webhook delivery %s to %s succeeded on attempt %d",
                    notification.id,
                    where,
                    attempt,
                )
                return
            if attempt == attempts:
                break
            delay = self._backoff(attempt)
            if retry.retry_after is not None:
                if retry.retry_after > self.config.backoff_max:
                    # Sleeping that long would pin a worker; the core's scheduler waits instead.
                    raise TransientError(
                        f"webhook {where} {retry.reason} and asked to retry after "
                        f"{retry.retry_after:.0f} s",
                        retry_after=retry.retry_after,
                    )
                delay = max(delay, retry.retry_after)
            self.context.logger.warning(
                "webhook delivery %s to %s failed (attempt %d of %d): %s; retrying in %.2f s",
                notification.id,
                where,
                attempt,
                attempts,
                retry.reason,
                delay,
            )
            await asyncio.sleep(delay)
        assert retry is not None  # the loop ran at least once and only breaks on a failure
        raise TransientError(
            f"webhook {where} failed after {attempts} attempt(s): {retry.reason}",
            retry_after=retry.retry_after,
        )

    async def _attempt(
        self, notification: Notification, body: bytes, key: str, where: str
    ) -> _Retry | None:
        """One POST: None when delivered, a :class:`_Retry` when worth repeating, else raise."""
        # A fresh timestamp per attempt keeps late retries inside the receiver's tolerance.
        timestamp = str(int(self.context.clock().timestamp()))
        headers = {
            **self.config.headers,
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(key, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
            EVENT_HEADER: notification.event,
            DELIVERY_HEADER: notification.id,
        }
        try:
            # httpx's timeout is per phase; the outer one bounds a receiver that trickles bytes.
            async with (
                asyncio.timeout(self.config.timeout),
                self.context.http.stream(
                    "POST",
                    self.config.url,
                    content=body,
                    headers=headers,
                    timeout=self.config.timeout,
                    follow_redirects=False,
                ) as response,
            ):
                status = response.status_code
                if status < 300:
                    return None
                snippet = await _read_snippet(response)
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, httpx.TimeoutException):
            return _Retry(f"did not answer within {self.config.timeout:g} s")
        except httpx.UnsupportedProtocol:
            raise ConfigurationError(f"webhook URL {where} has an unsupported scheme") from None
        except httpx.TransportError as exc:
            detail = str(exc).replace(self.config.url, where) or type(exc).__name__
            return _Retry(f"could not be reached ({detail})")

        if status in (408, 429) or status >= 500:
            return _Retry(
                f"answered HTTP {status}",
                _parse_retry_after(retry_after, self.context.clock()),
            )
        if status < 400:
            raise RejectedError(
                f"webhook {where} answered HTTP {status} (a redirect); redirects are not "
                "followed, so configure the final URL"
            )
        raise RejectedError(
            f"webhook {where} rejected delivery {notification.id} with HTTP {status}{snippet}"
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential back-off with "equal jitter": between half and all of the capped delay."""
        ceiling = min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1))
        return _jitter.uniform(ceiling / 2, ceiling)


async def _read_snippet(response: httpx.Response) -> str:
    """The start of an error body, for the operator; never the whole (possibly huge) body."""
    chunk = b""
    async for part in response.aiter_bytes():
        chunk += part
        if len(chunk) >= _SNIPPET_BYTES:
            break
    text = " ".join(chunk[:_SNIPPET_BYTES].decode("utf-8", "replace").split())
    return f": {text}" if text else ""


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _display_url(url: str) -> str:
    """Scheme, host and port only: paths and queries of webhook URLs often embed tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")
