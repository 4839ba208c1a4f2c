"""ACME problem documents (RFC 8555 §6.7): the one exception every ACME module raises.

An :class:`AcmeProblem` becomes ``application/problem+json`` with the RFC's error type, a
fresh ``Replay-Nonce`` (so a client can retry a ``badNonce`` at once) and the directory
``Link``; see ``controller.py``. Nothing else may escape an ACME handler as a 500.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACME_ERROR", "AcmeProblem"]

ACME_ERROR = "urn:ietf:params:acme:error:"

_STATUS = {
    "accountDoesNotExist": 400,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 400,
    "incorrectResponse": 400,
    "invalidContact": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
    "alreadyReplaced": 409,
}
"""Default HTTP status per error type (RFC 8555 §6.7, RFC 9773 §7 ``alreadyReplaced``)."""


class AcmeProblem(Exception):
    """An ACME error: ``kind`` is the part after ``urn:ietf:params:acme:error:``."""

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        status: int | None = None,
        subproblems: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        algorithms: list[str] | None = None,
    ) -> None:
        if kind not in _STATUS:
            raise ValueError(f"unknown ACME error type {kind!r}")
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status or _STATUS[kind]
        self.subproblems = subproblems or []
        self.headers = dict(headers or {})
        self.algorithms = algorithms

    def document(self) -> dict[str, Any]:
        """The problem document body."""
        body: dict[str, Any] = {
            "type": ACME_ERROR + self.kind,
            "detail": self.detail,
            "status": self.status,
        }
        if self.subproblems:
            body["subproblems"] = self.subproblems
        if self.algorithms:
            body["algorithms"] = self.algorithms  # RFC 8555 §6.2 badSignatureAlgorithm
        return body

    @classmethod
    def rate_limited(cls, detail: str, retry_after: int) -> AcmeProblem:
        """429 with ``Retry-After`` in seconds."""
        return cls("rateLimited", detail, headers={"Retry-After": str(max(1, retry_after))})
