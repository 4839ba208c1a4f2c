"""Errors a connector raises; the core decides retries from the class, never from the text.

The message of every :class:`ConnectorError` is shown to the operator, so it must say what went
wrong in their terms and must never contain a secret.

::

    ConnectorError                  user-facing; base of everything a connector raises on purpose
    ├── ConfigurationError          the instance's configuration cannot work; fix it, do not retry
    ├── AuthenticationError         the remote side refused our credentials; do not retry
    ├── UnsupportedOperation        the connector does not declare the capability that was used
    ├── RejectedError               the remote side refused this request (policy, CSR, quota)
    ├── DeploymentError             a deployment failed; ``rolled_back`` says what was restored
    └── TransientError              network failure, 5xx, throttling; retry, after ``retry_after``

Anything else escaping a connector is a bug: the core logs it with its traceback and treats it as
transient so the job is retried a bounded number of times.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectorError",
    "DeploymentError",
    "RejectedError",
    "TransientError",
    "UnsupportedOperation",
]


class ConnectorError(Exception):
    """Base class; ``str(error)`` is shown to the operator."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(ConnectorError):
    """The connector's configuration is invalid or inconsistent."""


class AuthenticationError(ConnectorError):
    """Credentials were refused by the remote system."""


class UnsupportedOperation(ConnectorError):
    """An optional operation was called on a connector that does not declare it."""


class RejectedError(ConnectorError):
    """The remote system refused this particular request; retrying will not help."""


class DeploymentError(ConnectorError):
    """A deployment failed; ``rolled_back`` is True when the previous state was restored."""

    def __init__(self, message: str, *, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class TransientError(ConnectorError):
    """A temporary failure; the core retries with back-off, no sooner than ``retry_after``."""

    retryable: ClassVar[bool] = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
