"""The SDK's target contract, against the real nginx from conftest.py."""

from __future__ import annotations

import pytest

from certctl_sdk.testing.contracts import TargetContract


@pytest.mark.nginx
class TestNginxContract(TargetContract):
    @pytest.fixture
    def target(self, make_target):
        return make_target()

    @pytest.fixture
    def deploy_request(self, second_request):
        return second_request
