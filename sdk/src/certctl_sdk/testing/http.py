"""A fake HTTP server for connector tests, built on :class:`httpx.MockTransport`.

Register routes, hand ``fake.client()`` to the connector (usually through
:func:`certctl_sdk.testing.make_context`) and assert on what it sent::

    fake = FakeHttp()
    fake.post("https://ca.example/v1/sign/{role}", httpx.Response(200, json={...}))
    fake.get("/health", httpx.Response(204))          # a path matches any host
    ...
    assert fake.calls_to("POST", "/v1/sign/web")[0].headers["x-token"] == "t"

A route answers with a canned :class:`httpx.Response` (served anew each time), with a sequence of
responses (one per call, the last one repeats: handy for polling), or with a handler that takes
the request and returns a response (``async def`` allowed). Requests no route matches get a 404
``application/problem+json`` naming the request, so a missing fake shows up in the connector's
error instead of reaching the network.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

__all__ = ["FakeHttp", "Handler", "Reply", "Route"]

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
"""A function computing the response to a request."""

Reply = httpx.Response | Sequence[httpx.Response] | Handler
"""What a route answers with."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _compile(pattern: str) -> re.Pattern[str]:
    """``{name}`` matches one path segment; everything else is literal."""
    parts: list[str] = []
    last = 0
    for m in _PLACEHOLDER.finditer(pattern):
        parts.append(re.escape(pattern[last : m.start()]))
        parts.append(f"(?P<{m.group(1)}>[^/?#]+)")
        last = m.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


def _copy(response: httpx.Response) -> httpx.Response:
    # httpx binds a response to the request that produced it; serve a fresh one every time.
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=response.content,
        extensions={k: v for k, v in response.extensions.items() if k == "reason_phrase"},
    )


class Route:
    """One registered ``(method, pattern)`` and the requests it answered."""

    def __init__(self, method: str, pattern: str, reply: Reply) -> None:
        self.method = method.upper()
        self.pattern = pattern
        self._regex = _compile(pattern)
        self._absolute = "://" in pattern
        self._with_query = "?" in pattern
        self._reply = reply
        self.calls: list[httpx.Request] = []

    def __repr__(self) -> str:
        return f"Route({self.method} {self.pattern}, calls={len(self.calls)})"

    def match(self, request: httpx.Request) -> dict[str, str] | None:
        """The placeholder values if this route answers ``request``, else None."""
        if self.method not in ("*", request.method):
            return None
        url = request.url
        if self._absolute:
            subject = str(url.copy_with(query=None, fragment=None))
        else:
            subject = url.raw_path.decode("ascii").split("?", 1)[0]
        if self._with_query and url.query:
            subject += "?" + url.query.decode("ascii")
        m = self._regex.fullmatch(subject)
        return m.groupdict() if m else None

    async def respond(self, request: httpx.Request) -> httpx.Response:
        """Produce the response for the ``len(calls)``-th call."""
        self.calls.append(request)
        reply = self._reply
        if isinstance(reply, httpx.Response):
            return _copy(reply)
        if isinstance(reply, Sequence):
            if not reply:
                raise ValueError(f"route {self.method} {self.pattern} has no responses")
            return _copy(reply[min(len(self.calls), len(reply)) - 1])
        result = reply(request)
        if inspect.isawaitable(result):
            result = await result
        return result


class FakeHttp:
    """A route table answering through :class:`httpx.MockTransport`; records every request.

    Routes are tried in registration order; the first match answers.
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def add(self, method: str, pattern: str, reply: Reply) -> Route:
        """Answer ``method`` (``"*"`` for any) requests to ``pattern`` with ``reply``.

        ``pattern`` is a full URL (``https://host/path``) or a path matching any host; add
        ``?query`` to match the query string too. ``{name}`` stands for one path segment.
        """
        route = Route(method, pattern, reply)
        self.routes.append(route)
        return route

    def get(self, pattern: str, reply: Reply) -> Route:
        """Shortcut for ``add("GET", ...)``."""
        return self.add("GET", pattern, reply)

    def post(self, pattern: str, reply: Reply) -> Route:
        """Shortcut for ``add("POST", ...)``."""
        return self.add("POST", pattern, reply)

    def put(self, pattern: str, reply: Reply) -> Route:
        """Shortcut for ``add("PUT", ...)``."""
        return self.add("PUT", pattern, reply)

    def patch(self, pattern: str, reply: Reply) -> Route:
        """Shortcut for ``add("PATCH", ...)``."""
        return self.add("PATCH", pattern, reply)

    def delete(self, pattern: str, reply: Reply) -> Route:
        """Shortcut for ``add("DELETE", ...)``."""
        return self.add("DELETE", pattern, reply)

    def calls_to(self, method: str, pattern: str) -> list[httpx.Request]:
        """Recorded requests (answered or not) that ``(method, pattern)`` would match."""
        probe = Route(method, pattern, ())
        return [r for r in self.requests if probe.match(r) is not None]

    def unmatched(self) -> list[httpx.Request]:
        """Requests no route answered (they got the 404 problem)."""
        return [r for r in self.requests if not any(rt.match(r) is not None for rt in self.routes)]

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An :class:`httpx.AsyncClient` on this transport; ``kwargs`` go to the client."""
        return httpx.AsyncClient(transport=self.transport, **kwargs)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for route in self.routes:
            if route.match(request) is not None:
                return await route.respond(request)
        problem = {
            "type": "about:blank",
            "title": "Not Found",
            "status": 404,
            "detail": f"no fake route for {request.method} {request.url}",
        }
        return httpx.Response(
            404,
            content=json.dumps(problem).encode(),
            headers={"content-type": "application/problem+json"},
        )
