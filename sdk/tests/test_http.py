"""certctl_sdk.http: one JSON POST mapped onto the error tree, with secrets masked."""

from datetime import UTC, datetime

import httpx
import pytest

from certctl_sdk import AuthenticationError, RejectedError, TransientError
from certctl_sdk.http import display_url, parse_retry_after, post_json, url_secrets
from certctl_sdk.testing import FakeHttp

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://hooks.example.test/services/T000/B000/s3cr3t-token-value"


async def _post(reply):
    fake = FakeHttp()
    fake.post(URL, reply)
    async with fake.client() as client:
        return await post_json(
            client, URL, {"a": 1}, what="Example API", seconds=2, now=NOW, secrets=url_secrets(URL)
        )


async def test_success_returns_the_start_of_the_body():
    assert await _post(httpx.Response(200, content=b"ok")) == b"ok"


async def test_throttling_is_transient_with_retry_after():
    with pytest.raises(TransientError) as caught:
        await _post(httpx.Response(429, headers={"Retry-After": "30"}))
    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials(status):
    with pytest.raises(AuthenticationError):
        await _post(httpx.Response(status))


async def test_other_client_errors_are_rejected_with_the_secret_masked():
    with pytest.raises(RejectedError) as caught:
        await _post(httpx.Response(400, content=b"bad token s3cr3t-token-value in " + URL.encode()))
    assert "s3cr3t-token-value" not in str(caught.value)
    assert "Example API" in str(caught.value)


async def test_redirects_are_not_followed():
    with pytest.raises(RejectedError, match="redirect"):
        await _post(httpx.Response(302, headers={"Location": "https://elsewhere.test/"}))


async def test_network_failure_is_transient():
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TransientError, match="could not be reached"):
        await _post(boom)


def test_display_url_and_retry_after_forms():
    assert display_url(URL) == "https://hooks.example.test"
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", NOW) == 60.0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None
