"""Every error leaves the server as an RFC 9457 problem document, from this one module."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from certctl.errors import CertctlError
from certctl.lib.encryption import DecryptionError
from certctl_sdk.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    TransientError,
    UnsupportedOperation,
)
from certctl_sdk.pem import PemError

__all__ = ["PROBLEM_MEDIA_TYPE", "exception_handlers", "problem_response"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("certctl.http")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem_response(
    status: int, detail: str, *, title: str | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    """Build a problem document response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    headers = {"WWW-Authenticate": 'Bearer realm="certctl"'} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _certctl_error(_: Request[Any, Any, Any], exc: CertctlError) -> Response[dict[str, Any]]:
    response = problem_response(exc.status, exc.detail, title=exc.title, **exc.extra)
    # An error may carry Set-Cookie values (a rejected session cookie is cleared).
    for cookie in getattr(exc, "cookies", ()):
        response.set_cookie(cookie)
    return response


def _connector_error(_: Request[Any, Any, Any], exc: ConnectorError) -> Response[dict[str, Any]]:
    # A connector's message is written for the operator; the status says whose fault it is.
    if isinstance(exc, ConfigurationError):
        return problem_response(400, exc.message, title="Invalid Connector Configuration")
    if isinstance(exc, UnsupportedOperation):
        return problem_response(422, exc.message, title="Unsupported Operation")
    if isinstance(exc, TransientError):
        return problem_response(503, exc.message)
    if isinstance(exc, AuthenticationError):
        return problem_response(502, exc.message, title="Upstream Authentication Failed")
    return problem_response(502, exc.message, title="Upstream Refused")


def _pem_error(_: Request[Any, Any, Any], exc: PemError) -> Response[dict[str, Any]]:
    return problem_response(400, str(exc), title="Invalid PEM")


def _decryption_error(_: Request[Any, Any, Any], exc: DecryptionError) -> Response[dict[str, Any]]:
    _log.error("stored secret could not be decrypted: %s", exc)
    return problem_response(
        503,
        "stored secrets cannot be decrypted with the configured CERTCTL_CONFIG_ENCRYPTION_KEY",
    )


def _validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if exc.extra:
        extra["errors"] = exc.extra
    detail = exc.detail or "invalid request"
    return problem_response(400, detail, **extra)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if exc.status_code >= 500:
        _log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    return problem_response(exc.status_code, exc.detail or _TITLES.get(exc.status_code, "Error"))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error; the server log has the details")


exception_handlers: dict[type[Exception] | int, Any] = {
    CertctlError: _certctl_error,
    ConnectorError: _connector_error,
    PemError: _pem_error,
    DecryptionError: _decryption_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}
"""Passed to ``Litestar(exception_handlers=...)``; the most specific class wins."""
