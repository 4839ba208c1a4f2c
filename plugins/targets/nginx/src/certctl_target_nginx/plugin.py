"""Entry point of ``certctl-target-nginx``: registers the NGINX target with certctl."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from certctl_sdk import Target, hookimpl
from certctl_target_nginx.target import NginxTarget

__all__ = ["register_targets"]


@hookimpl
def register_targets() -> Iterable[type[Target[Any]]]:
    """Provide the ``nginx`` target kind."""
    return [NginxTarget]
