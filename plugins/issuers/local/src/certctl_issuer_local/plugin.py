"""Entry point of ``certctl-issuer-local``: registers the Local CA issuer with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_issuer_local.issuer import LocalIssuer
from certctl_sdk import Issuer, hookimpl

__all__ = ["register_issuers"]


@hookimpl
def register_issuers() -> Iterable[type[Issuer[Any]]]:
    """Provide the ``local`` issuer kind."""
    return [LocalIssuer]
