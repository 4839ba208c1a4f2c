"""Tests for the example issuer: the SDK's contract suite plus behaviour against a fake API."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx
import pytest

from certctl_sdk import AuthenticationError, IssueRequest, Secret, TransientError
from certctl_sdk.testing import FakeHttp, TestCA, make_context, make_issue_request
from certctl_sdk.testing.contracts import IssuerContract

_spec = importlib.util.spec_from_file_location(
    "signing_service_issuer", Path(__file__).with_name("signing_service_issuer.py")
)
assert _spec is not None
assert _spec.loader is not None
example = importlib.util.module_from_spec(_spec)
sys.modules["signing_service_issuer"] = example
_spec.loader.exec_module(example)

URL = "https://ca.example.test"


@pytest.fixture
def ca() -> TestCA:
    return TestCA.create(common_name="Example Signing CA")


@pytest.fixture
def fake(ca: TestCA) -> FakeHttp:
    http = FakeHttp()

    def sign(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != "Bearer s3cret":
            return httpx.Response(401)
        leaf = ca.sign_csr(__import__("json").loads(request.content)["csr"])
        return httpx.Response(
            200, json={"certificate": leaf.certificate_pem, "chain": [ca.certificate_pem]}
        )

    http.post(f"{URL}/sign", sign)
    return http


@pytest.fixture
def issuer(fake: FakeHttp):
    config = example.SigningServiceConfig(url=URL, token=Secret("s3cret"))
    return example.SigningServiceIssuer(config, make_context(http=fake))


@pytest.fixture
def issue_request() -> IssueRequest:
    return make_issue_request("www.example.test")[0]


class TestSigningServiceContract(IssuerContract):
    """Everything every issuer must do, inherited from the SDK."""


async def test_token_is_sent_and_refusal_is_an_authentication_error(
    ca: TestCA, issue_request: IssueRequest
) -> None:
    http = FakeHttp()
    http.post(f"{URL}/sign", httpx.Response(401))
    issuer = example.SigningServiceIssuer(
        example.SigningServiceConfig(url=URL, token=Secret("wrong")), make_context(http=http)
    )
    with pytest.raises(AuthenticationError):
        await issuer.issue(issue_request)
    assert http.requests[0].headers["Authorization"] == "Bearer wrong"


async def test_throttling_is_transient_with_retry_after(issue_request: IssueRequest) -> None:
    http = FakeHttp()
    http.post(f"{URL}/sign", httpx.Response(429, headers={"Retry-After": "30"}))
    issuer = example.SigningServiceIssuer(
        example.SigningServiceConfig(url=URL, token=Secret("t")), make_context(http=http)
    )
    with pytest.raises(TransientError) as caught:
        await issuer.issue(issue_request)
    assert caught.value.retry_after == 30.0
