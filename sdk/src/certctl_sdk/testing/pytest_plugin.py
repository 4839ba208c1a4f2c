"""pytest fixtures for connector tests, loaded automatically wherever certctl-sdk is installed.

Registered under the ``pytest11`` entry point, so importing this module must stay free of side
effects and of optional dependencies: the fixtures are synchronous (no pytest-asyncio needed)
and nothing is built until a test asks for it.

``certctl_fake_http``
    A fresh :class:`~certctl_sdk.testing.FakeHttp` (routes + recorded requests).
``certctl_context``
    A :class:`~certctl_sdk.connector.ConnectorContext` whose ``http`` client answers from
    ``certctl_fake_http``, with in-memory state, plain secrets and the real UTC clock.
``certctl_test_ca``
    A :class:`~certctl_sdk.testing.TestCA` shared by the session (it is immutable).
"""

from __future__ import annotations

import pytest

from certctl_sdk.connector import ConnectorContext
from certctl_sdk.testing.certs import TestCA
from certctl_sdk.testing.context import make_context
from certctl_sdk.testing.http import FakeHttp


@pytest.fixture
def certctl_fake_http() -> FakeHttp:
    """Routes and recorded requests for the connector's HTTP client."""
    return FakeHttp()


@pytest.fixture
def certctl_context(certctl_fake_http: FakeHttp) -> ConnectorContext:
    """A connector context on the fake HTTP server; the client needs no closing (no sockets)."""
    return make_context(http=certctl_fake_http)


@pytest.fixture(scope="session")
def certctl_test_ca() -> TestCA:
    """An offline root CA (ECDSA P-256) for the whole session."""
    return TestCA.create()
