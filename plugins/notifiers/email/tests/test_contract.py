"""The SDK's notifier contract, against a real SMTP server with STARTTLS and login."""

from __future__ import annotations

import pytest

from certctl_sdk.testing.contracts import NotifierContract


class TestEmailContract(NotifierContract):
    @pytest.fixture
    def server(self, smtp_server):
        return smtp_server("starttls")

    @pytest.fixture
    def notifier(self, make_notifier, server):
        return make_notifier(server[0])

    @pytest.fixture
    def delivered(self, server):
        # One entry per message the server accepted: its raw content (headers and body).
        return lambda: [envelope.content for envelope in server[1].envelopes]
