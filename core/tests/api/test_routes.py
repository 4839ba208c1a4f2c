"""The route table against the guard's rules and docs/security.md.

Every handler must decide: a permission, ``public`` or ``authenticated``. The public ones must be
in ``PUBLIC_ROUTES`` and in the document's exempt table; every gated one must be in the
document's permission table with the same permission. Adding a route without updating the
document fails here.
"""

import re
from pathlib import Path

import pytest

from certctl.domain.auth.guards import PUBLIC_ROUTES, _litestar_handler
from certctl.domain.auth.permissions import ALL_PERMISSIONS

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


AUTHENTICATED = "(authenticated)"
OPENAPI_PATH = "/schema"


@pytest.fixture
async def client(app_factory):
    """Every optional route switched on: break-glass routes exist only while it is enabled.

    The request limit is off: these tests call every route without credentials from one
    address, well past a burst (test_rate_limit.py covers the limit).
    """
    return await app_factory(
        rate_limit_enabled=False,
        breakglass_enabled=True,
        breakglass_argon2_memory_kib=1024,
        breakglass_argon2_time_cost=1,
        breakglass_argon2_parallelism=1,
    )


def _path(route_path: str) -> str:
    """``/x/{id:str}`` → ``/x/{id}``, the spelling the document uses."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path)


def _handlers(app):
    """(method, path, handler) for every HTTP handler, Litestar's own included."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                yield method, _path(route.path), handler


def _own_handlers(app):
    for method, path, handler in _handlers(app):
        if _litestar_handler(handler) is None:
            yield method, path, handler


def _markdown_table(section: str) -> list[dict[str, str]]:
    """The first table under the ``## {section}`` heading, as dicts keyed by lower-case header."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/security.md has no section {section!r}"
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip().startswith("|")]
    assert len(lines) >= 3, f"no table in section {section!r}"
    header = [c.strip().lower() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _derived_permission_table(app) -> set[tuple[str, str, str]]:
    table = set()
    for method, path, handler in _own_handlers(app):
        if handler.opt.get("public"):
            continue
        permission = handler.opt.get("permission") or (
            AUTHENTICATED if handler.opt.get("authenticated") else None
        )
        table.add((method, path, permission))
    return table


def test_every_handler_declares_exactly_one_decision(client):
    undecided = []
    for method, path, handler in _own_handlers(client.app):
        decisions = [k for k in ("permission", "public", "authenticated") if handler.opt.get(k)]
        if len(decisions) != 1:
            undecided.append((method, path, decisions))
    assert undecided == []


def test_litestar_handlers_are_only_openapi_and_options(client):
    for method, path, handler in _handlers(client.app):
        kind = _litestar_handler(handler)
        if kind == "openapi":
            assert path == OPENAPI_PATH or path.startswith(OPENAPI_PATH + "/"), path
        elif kind == "options":
            assert method == "OPTIONS"
        else:
            assert handler.fn.__module__.startswith("certctl."), (method, path)


def test_every_permission_used_is_in_the_catalogue(client):
    used = {h.opt["permission"] for _, _, h in _own_handlers(client.app) if "permission" in h.opt}
    assert used
    assert used <= ALL_PERMISSIONS, used - ALL_PERMISSIONS


def test_public_routes_match_the_guard_and_the_document(client):
    public_paths = {path for _, path, h in _own_handlers(client.app) if h.opt.get("public")}
    public_paths.add(OPENAPI_PATH)  # Litestar's OpenAPI router, public by the guard
    documented = {row["path"] for row in _markdown_table("Routes exempt from authentication")}
    assert public_paths == set(PUBLIC_ROUTES)
    assert documented == set(PUBLIC_ROUTES)


def test_permission_table_matches_the_document(client):
    documented = {
        (row["method"], row["path"], row["permission"])
        for row in _markdown_table("Route permissions")
    }
    derived = _derived_permission_table(client.app)
    assert derived - documented == set(), "routes missing from docs/security.md"
    assert documented - derived == set(), "docs/security.md lists routes the app does not have"


def test_scoped_route_table_matches_the_document(client):
    documented = {
        (row["method"], row["path"], row["scope"]) for row in _markdown_table("Scoped routes")
    }
    derived = set()
    for method, path, handler in _own_handlers(client.app):
        scope = handler.opt.get("scope")
        if scope is not None:
            scope_type, param = scope
            assert "{" + param + "}" in path, (path, param)
            assert "permission" in handler.opt, path
            derived.add((method, path, scope_type))
    assert derived == documented


def test_document_rows_are_unique():
    rows = [(r["method"], r["path"]) for r in _markdown_table("Route permissions")]
    assert len(rows) == len(set(rows))
    paths = [r["path"] for r in _markdown_table("Routes exempt from authentication")]
    assert len(paths) == len(set(paths))


async def test_every_gated_route_is_401_without_credentials(client):
    gated = sorted(_derived_permission_table(client.app))
    assert len(gated) >= 40
    for method, path, _ in gated:
        url = re.sub(r"\{\w+\}", "dummy-id", path)
        r = await client.request(method, url, json={} if method != "GET" else None)
        assert r.status_code == 401, (method, url, r.status_code, r.text)
        assert r.headers["www-authenticate"] == 'Bearer realm="certctl"'
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_public_routes_answer_without_credentials(client):
    for path in ("/health", "/ready", "/api/v1/version", "/api/v1/auth/bootstrap"):
        r = await client.get(path)
        assert r.status_code == 200, (path, r.text)
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "certctl"
    assert "/api/v1/certificates" in r.json()["paths"]


async def test_options_needs_a_valid_key_but_no_permission(client, viewer_headers):
    r = await client.options("/api/v1/profiles")
    assert r.status_code == 401
    r = await client.options("/api/v1/profiles", headers=viewer_headers)
    assert r.status_code == 204
    assert "POST" in r.headers["allow"]


async def test_a_route_without_a_decision_is_closed_even_to_admins(app_factory, admin_headers):
    """The guard fails closed: forgetting ``opt`` on a new route must not open it."""
    from litestar import post

    from certctl.domain.auth.guards import authorize

    @post("/api/v1/undeclared", sync_to_thread=False)
    def undeclared() -> dict[str, str]:
        return {"ok": "yes"}

    @post("/api/v1/declared-authenticated", opt={"authenticated": True}, sync_to_thread=False)
    def declared() -> dict[str, str]:
        return {"ok": "yes"}

    client = await app_factory()
    client.app.register(undeclared)
    client.app.register(declared)
    assert authorize in client.app.guards
    r = await client.post("/api/v1/undeclared")
    assert r.status_code == 401
    r = await client.post("/api/v1/undeclared", headers=admin_headers)
    assert r.status_code == 403
    assert "declares no permission" in r.json()["detail"]
    r = await client.post("/api/v1/declared-authenticated", headers=admin_headers)
    assert r.status_code == 201
