"""One JSON POST to a vendor API, its outcome mapped onto the connector error tree.

For connectors that talk to a vendor's JSON HTTP API (chat, paging, ticketing, REST CAs).
A single attempt per call: retries belong to the core's scheduler, which honours
``TransientError.retry_after`` (taken from the ``Retry-After`` header). Statuses map to the
error tree: 408/429/5xx and network failures → TransientError, 401/403 → AuthenticationError,
other 4xx and redirects → RejectedError. Messages never contain the URL's path or query, and
every string in ``secrets`` is masked in the snippet of the vendor's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec

from certctl_sdk import (
    AuthenticationError,
    ConfigurationError,
    RejectedError,
    TransientError,
)

__all__ = ["display_url", "parse_retry_after", "post_json", "url_secrets"]

_SNIPPET_BYTES = 200


def display_url(url: str) -> str:
    """Scheme, host and port only: paths and queries may embed tokens."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def url_secrets(url: str) -> tuple[str, ...]:
    """What to mask when a URL is the credential: the URL and its longer path and query parts.

    A vendor's error body may echo a token (a path segment, a ``sig=`` value) rather than the
    whole URL; short parts (``v2``, ``1``) are left alone so messages stay readable.
    """
    parts = urlsplit(url)
    pieces = [segment for segment in parts.path.split("/") if len(segment) >= 8]
    pieces += [value for _, value in parse_qsl(parts.query) if len(value) >= 8]
    return (url, *sorted(pieces, key=len, reverse=True))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
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


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "**********")
    return text


async def post_json(
    http: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    what: str,
    seconds: float,
    now: datetime,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> bytes:
    """POST ``payload`` as JSON; the start of a 2xx body, or raise a :class:`ConnectorError`.

    ``what`` names the endpoint in messages (never the full URL); every string in ``secrets``
    is masked in anything that might be shown.
    """
    hidden = tuple(secrets)
    body = msgspec.json.encode(payload)
    try:
        async with (
            asyncio.timeout(seconds),
            http.stream(
                "POST",
                url,
                content=body,
                headers={"Content-Type": "application/json", **(headers or {})},
                timeout=seconds,
                follow_redirects=False,
            ) as response,
        ):
            status = response.status_code
            chunk = b""
            async for part in response.aiter_bytes():
                chunk += part
                if len(chunk) >= _SNIPPET_BYTES:
                    break
            retry_after = response.headers.get("Retry-After")
    except (TimeoutError, httpx.TimeoutException):
        raise TransientError(f"{what} did not answer within {seconds:g} s") from None
    except httpx.UnsupportedProtocol:
        raise ConfigurationError(f"{what} has an unsupported URL scheme") from None
    except httpx.TransportError as exc:
        raise TransientError(f"{what} could not be reached ({type(exc).__name__})") from None

    if 200 <= status < 300:
        return chunk
    text = _redact(" ".join(chunk[:_SNIPPET_BYTES].decode("utf-8", "replace").split()), hidden)
    snippet = f": {text}" if text else ""
    if status in (408, 429) or status >= 500:
        raise TransientError(
            f"{what} answered HTTP {status}{snippet}",
            retry_after=parse_retry_after(retry_after, now),
        )
    if status in (401, 403):
        raise AuthenticationError(f"{what} refused the credentials (HTTP {status}){snippet}")
    if status < 400:
        raise RejectedError(
            f"{what} answered HTTP {status} (a redirect); redirects are not followed, "
            "so configure the final URL"
        )
    raise RejectedError(f"{what} rejected the request with HTTP {status}{snippet}")
