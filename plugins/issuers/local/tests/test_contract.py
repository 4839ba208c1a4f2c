"""The Local CA passes the SDK's issuer contract, in both modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from certctl_issuer_local import LocalIssuer, LocalIssuerConfig
from certctl_sdk import IssueRequest, Secret
from certctl_sdk.testing import TestCA, make_issue_request
from certctl_sdk.testing.contracts import IssuerContract


class TestLocalIssuerContract(IssuerContract):
    @pytest.fixture
    def issuer(self, make_issuer: Callable[..., LocalIssuer]) -> LocalIssuer:
        return make_issuer(LocalIssuerConfig(common_name="Contract Root"))

    @pytest.fixture
    def issue_request(self) -> IssueRequest:
        return make_issue_request("www.example.test")[0]


class TestLocalSubCaContract(IssuerContract):
    @pytest.fixture
    def issuer(self, make_issuer: Callable[..., LocalIssuer]) -> LocalIssuer:
        ca = TestCA.create()  # a root used directly as the supplied signing CA
        config = LocalIssuerConfig(
            mode="sub-ca", ca_certificate_pem=ca.certificate_pem, ca_private_key=Secret(ca.key_pem)
        )
        return make_issuer(config)

    @pytest.fixture
    def issue_request(self) -> IssueRequest:
        return make_issue_request("api.example.test")[0]
