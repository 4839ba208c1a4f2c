"""A real HTTP receiver on loopback, scripted per test, and a notifier wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from certctl_notifier_teams import CardFormat, TeamsNotifier, TeamsNotifierConfig
from certctl_sdk import Notification, Secret, Severity
from certctl_sdk.testing import make_context
from certctl_sdk.testing.receiver import HttpReceiver as Receiver

HOOK_PATH = "/workflows/abc123/triggers/manual/paths/invoke?api-version=1&sig=sEcReTt0kEn4tests"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def hook_path() -> str:
    return HOOK_PATH


@pytest.fixture
def make_notifier(http: httpx.AsyncClient, receiver: Receiver):
    """A notifier posting to the receiver; ``overrides`` tune its config."""

    def build(**overrides: object) -> TeamsNotifier:
        settings: dict[str, Any] = {
            "webhook_url": Secret(receiver.base_url + HOOK_PATH),
            "timeout": 2.0,
        }
        settings.update(overrides)
        if "card" in settings:
            settings["card"] = CardFormat(settings["card"])
        config = TeamsNotifierConfig(**settings)
        return TeamsNotifier(config, make_context(http=http, clock=lambda: NOW))

    return build


@pytest.fixture
def notification() -> Notification:
    return Notification(
        id="ntf_01JNTEAMS",
        event="certificate.expiring",
        subject="www.example.com expires in 7 days",
        body="The certificate for <www.example.com> expires on 2025-03-08 & needs renewal.",
        severity=Severity.WARNING,
        occurred_at=NOW,
        certificate_id="crt_42",
        data={"days_left": 7},
    )
