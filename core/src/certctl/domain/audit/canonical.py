"""The canonical encoding of an audit row, and the hash that chains it to the row before.

The hashed input is one JSON document, so no field value can be mistaken for a separator
(a pipe-joined string is ambiguous as soon as a field contains ``|``)::

    ["certctl-audit/1", <seq>, "<prev_hash>", {<every other column, keys sorted>}]

serialised as Python's ``json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=True)``; ``timestamp`` is UTC with exactly six fractional digits
(``2026-12-02T05:37:15.423000Z``) and ``details`` is the stored JSON value. ``row_hash`` is
the lower-case hex SHA-256 of the UTF-8 bytes. An auditor recomputes it from an export with
those five lines of Python (docs/security.md).

The part inside the braces does not depend on the chain position, so writers serialise it
before they take the chain lock and only splice in ``seq`` and ``prev_hash`` under it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "BODY_FIELDS",
    "FORMAT",
    "GENESIS_HASH",
    "body_json",
    "canonical_timestamp",
    "chain_input",
    "json_value",
    "row_hash",
]

FORMAT = "certctl-audit/1"
"""First element of every hashed document: a change of encoding gets a new tag."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row."""

_HEX64 = re.compile(r"[0-9a-f]{64}")

BODY_FIELDS = (
    "id",
    "timestamp",
    "actor",
    "actor_type",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "category",
    "details",
)
"""Every column of ``audit_events`` but the chain's own (``seq``, ``prev_hash``, ``row_hash``)."""


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def canonical_timestamp(value: datetime | str) -> str:
    """UTC, microseconds always written (an exported timestamp string is taken as it is)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("audit timestamps are timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_value(details: Any) -> Any:
    """``details`` as the database will give it back: tuples become lists, keys strings.

    Datetimes become ISO 8601 strings and NaN or infinities null; anything else without a
    JSON form raises ValueError, at the call that records it rather than at commit.
    """
    try:
        return msgspec.json.decode(msgspec.json.encode(details))
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"audit details must be plain JSON: {exc}") from None


def body_json(row: Mapping[Any, Any]) -> str:
    """The position-independent part of the hashed document."""
    body = {name: row[name] for name in BODY_FIELDS}
    body["timestamp"] = canonical_timestamp(row["timestamp"])
    return _dumps(body)


def chain_input(seq: int, prev_hash: str, body: str) -> bytes:
    """Exactly ``_dumps([FORMAT, seq, prev_hash, json.loads(body)])``, without re-serialising."""
    prev = f'"{prev_hash}"' if _HEX64.fullmatch(prev_hash) else _dumps(prev_hash)
    return f'["{FORMAT}",{int(seq)},{prev},{body}]'.encode()


def row_hash(seq: int, prev_hash: str, body: str) -> str:
    """The row's ``row_hash``."""
    return hashlib.sha256(chain_input(seq, prev_hash, body)).hexdigest()
