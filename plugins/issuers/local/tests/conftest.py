"""Fixtures for the Local CA tests: issuers on in-memory state, cached roots and CSRs, openssl.

Roots and RSA keys take seconds to generate at 4096 bits, so each is made once per session and
reused: a root through a shared state-store snapshot (which also exercises persistence), a CSR
per key type through a dict.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from certctl_issuer_local import LocalIssuer, LocalIssuerConfig
from certctl_sdk import KeyType, StateStore
from certctl_sdk.testing import MemoryStateStore, make_context, make_csr


@pytest.fixture(scope="session")
def root_states() -> dict[KeyType, dict[str, bytes]]:
    """Snapshots of a state store holding a generated root, per CA key type."""
    return {}


@pytest.fixture(scope="session")
def csrs() -> Callable[[KeyType], str]:
    """``csrs(key_type)``: a CSR for www.example.test with a key of that type, made once."""
    cache: dict[KeyType, str] = {}

    def get(key_type: KeyType) -> str:
        if key_type not in cache:
            cache[key_type] = make_csr("www.example.test", key_type=key_type)[0]
        return cache[key_type]

    return get


@pytest.fixture
def make_issuer() -> Callable[..., LocalIssuer]:
    """Build a LocalIssuer: pass a config or its fields, plus optional ``state`` and ``clock``."""

    def make(
        config: LocalIssuerConfig | None = None,
        *,
        state: StateStore | None = None,
        clock: Callable[[], datetime] | None = None,
        **fields: Any,
    ) -> LocalIssuer:
        return LocalIssuer(
            config or LocalIssuerConfig(**fields), make_context(state=state, clock=clock)
        )

    return make


@pytest.fixture
def root_issuer(
    make_issuer: Callable[..., LocalIssuer], root_states: dict[KeyType, dict[str, bytes]]
) -> Callable[[KeyType], Any]:
    """``await root_issuer(ca_key_type)``: a self-signed issuer whose root is reused per type."""

    async def make(key_type: KeyType) -> LocalIssuer:
        state = MemoryStateStore(root_states.get(key_type))
        issuer = make_issuer(ca_key_type=key_type, state=state)
        await issuer.ca_certificates()
        root_states.setdefault(key_type, dict(state.data))
        return issuer

    return make


@pytest.fixture(scope="session")
def openssl() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``openssl`` binary; the result carries stdout and stderr as text."""
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("the openssl command is not installed")

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *map(str, args)], capture_output=True, text=True, check=False, timeout=60
        )

    return run
