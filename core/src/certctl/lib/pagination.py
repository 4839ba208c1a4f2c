"""The reference's list envelope: ``{data, total, page, per_page}``."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from certctl.errors import BadRequest

__all__ = ["MAX_PER_PAGE", "Page", "page_window"]

T = TypeVar("T")
MAX_PER_PAGE = 500


class Page(msgspec.Struct, Generic[T], kw_only=True):
    """One page of a list."""

    data: list[T]
    total: int
    page: int
    per_page: int


def page_window(page: int, per_page: int) -> tuple[int, int]:
    """(offset, limit) for 1-based ``page``; rejects out-of-range values with a 400."""
    if page < 1:
        raise BadRequest("page must be at least 1")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return (page - 1) * per_page, per_page
