"""The SDK's notifier contract, against the real loopback receiver."""

from __future__ import annotations

import pytest

from certctl_sdk.testing.contracts import NotifierContract


class TestTeamsContract(NotifierContract):
    @pytest.fixture
    def notifier(self, make_notifier):
        return make_notifier()

    @pytest.fixture
    def delivered(self, receiver):
        # One entry per request that reached the receiver: its raw JSON body.
        return lambda: [request.body for request in receiver.requests]
