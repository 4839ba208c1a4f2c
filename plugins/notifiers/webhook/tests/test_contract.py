"""The SDK's notifier contract, against the real loopback receiver."""

from __future__ import annotations

import pytest

from certctl_sdk.testing.contracts import NotifierContract


class TestWebhookContract(NotifierContract):
    @pytest.fixture
    def notifier(self, make_notifier):
        return make_notifier()

    @pytest.fixture
    def delivered(self, receiver):
        # One entry per request that reached the receiver: its raw body (the notification JSON).
        return lambda: [request.body for request in receiver.requests]
