"""Domain errors of the server; each maps to one RFC 9457 problem response.

::

    CertctlError                 400 unless a subclass says otherwise
    ├── BadRequest               400 malformed or inconsistent input
    ├── Unauthorized             401 missing or invalid credentials
    ├── Forbidden                403 authenticated but not permitted
    ├── NotFound                 404 no such resource
    ├── Conflict                 409 the resource's state does not allow this
    ├── Gone                     410 a one-time resource was already used
    ├── PolicyViolation          422 the request breaks the certificate profile's policy
    ├── TooManyRequests          429 over a rate limit (``Retry-After`` says when to retry)
    └── ServiceUnavailable       503 a dependency (database, plugin) is not usable

Connector errors (``certctl_sdk.errors``) raised inside a request map in ``lib/problem.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequest",
    "CertctlError",
    "Conflict",
    "Forbidden",
    "Gone",
    "NotFound",
    "PolicyViolation",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
]


class CertctlError(Exception):
    """Base class: ``detail`` is shown to the caller, ``extra`` becomes problem members."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad Request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(CertctlError):
    """Malformed or inconsistent input."""


class Unauthorized(CertctlError):
    """No valid credentials."""

    status = 401
    title = "Unauthorized"


class Forbidden(CertctlError):
    """Valid credentials without the needed permission."""

    status = 403
    title = "Forbidden"


class NotFound(CertctlError):
    """The addressed resource does not exist."""

    status = 404
    title = "Not Found"


class Conflict(CertctlError):
    """The resource's current state forbids the operation."""

    status = 409
    title = "Conflict"


class Gone(CertctlError):
    """A one-time resource (the bootstrap token) was already consumed."""

    status = 410
    title = "Gone"


class PolicyViolation(CertctlError):
    """The request violates the certificate profile."""

    status = 422
    title = "Policy Violation"


class TooManyRequests(CertctlError):
    """Over a rate limit; ``retry_after`` (whole seconds) becomes the ``Retry-After`` header."""

    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after_seconds=max(1, retry_after), **extra)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(CertctlError):
    """A dependency is not usable right now."""

    status = 503
    title = "Service Unavailable"
