"""Request-scoped dependencies shared by every controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.domain.auth.actor import Actor
from certctl.domain.auth.guards import current_actor
from certctl.runtime import Runtime

__all__ = ["DEPENDENCIES", "ActorDep", "RuntimeDep", "SessionDep"]


def provide_runtime(request: Request[Any, Any, Any]) -> Runtime:
    """The application's runtime (engine, plugins, services)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def provide_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """A session per request; handlers commit what they change, the rest is rolled back."""
    async with request.app.state.runtime.sessions() as session:
        yield session


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """The authenticated caller."""
    return current_actor(request)


DEPENDENCIES = {
    "runtime": Provide(provide_runtime, sync_to_thread=False),
    "session": Provide(provide_session),
    "actor": Provide(provide_actor, sync_to_thread=False),
}

RuntimeDep = NamedDependency[Runtime]
SessionDep = NamedDependency[AsyncSession]
ActorDep = NamedDependency[Actor]
"""Handler parameter types; Litestar 3 requires dependencies to be marked explicitly."""
