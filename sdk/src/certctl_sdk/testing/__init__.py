"""The kit plugin authors import in their tests: a test CA, HTTP fakes and context builders.

The contract suites live in :mod:`certctl_sdk.testing.contracts` (they need pytest and
pytest-asyncio, the SDK's ``testing`` extra); everything here imports without either.
"""

from certctl_sdk.testing.certs import (
    IssuedLeaf,
    TestCA,
    generate_private_key,
    make_csr,
    private_key_pem,
)
from certctl_sdk.testing.context import (
    ManualClock,
    MemoryStateStore,
    PlainSecretResolver,
    make_context,
)
from certctl_sdk.testing.http import FakeHttp, Route
from certctl_sdk.testing.requests import make_deploy_request, make_issue_request

__all__ = [
    "FakeHttp",
    "IssuedLeaf",
    "ManualClock",
    "MemoryStateStore",
    "PlainSecretResolver",
    "Route",
    "TestCA",
    "generate_private_key",
    "make_context",
    "make_csr",
    "make_deploy_request",
    "make_issue_request",
    "private_key_pem",
]
