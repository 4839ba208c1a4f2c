"""The audit chain's pure parts: canonical encoding, redaction, the walker, the frozen migration copy."""

import hashlib
import importlib.util
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from certctl.domain.audit.canonical import (
    GENESIS_HASH,
    body_json,
    canonical_timestamp,
    chain_input,
    json_value,
    row_hash,
)
from certctl.domain.audit.chain import prepare
from certctl.domain.audit.redact import REDACTED, redact
from certctl.domain.audit.verify import (
    Anchor,
    ChainWalker,
    parse_anchor,
    verify_export_lines,
)

T0 = datetime(2026, 12, 2, 5, 37, 15, 423000, tzinfo=UTC)


def _row(i: int, **changes):
    row = {
        "id": f"aud-{i:016x}",
        "timestamp": T0 + timedelta(microseconds=i),
        "actor": "admin",
        "actor_type": "APIKey",
        "action": "profile.create",
        "resource_type": "profile",
        "resource_id": f"prof-{i}",
        "outcome": "success",
        "category": "config",
        "details": {"name": f"p{i}", "nested": [1, 2.5, None, {"ü": "✓"}]},
    }
    row.update(changes)
    return row


def _chain(rows):
    prev, out = GENESIS_HASH, []
    for seq, row in enumerate(rows, 1):
        digest = row_hash(seq, prev, body_json(row))
        out.append({**row, "seq": seq, "prev_hash": prev, "row_hash": digest})
        prev = digest
    return out


# --- encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"a|b": "c|d", "quote": '"', "backslash": "\\", "newline": "x\ny"},
        {"unicode": "é ✓ 😀", "zero": 0, "float": 0.1, "big": 2**70, "list": [[], {}]},
    ],
)
def test_spliced_input_is_exactly_the_documented_json(details):
    row = _row(1, details=details, actor='a"|b')
    body = {**row, "timestamp": canonical_timestamp(row["timestamp"])}
    documented = json.dumps(
        ["certctl-audit/1", 7, "ab" * 32, body],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    assert chain_input(7, "ab" * 32, body_json(row)) == documented.encode()
    odd = json.dumps(["certctl-audit/1", 7, 'x"y', body], sort_keys=True, separators=(",", ":"))
    assert chain_input(7, 'x"y', body_json(row)) == odd.encode()
    assert row_hash(7, "ab" * 32, body_json(row)) == hashlib.sha256(documented.encode()).hexdigest()


def test_field_boundaries_cannot_be_moved():
    """A pipe-joined encoding makes these two rows collide; ours does not."""
    one = _row(1, actor="a|b", action="c")
    two = _row(1, actor="a", action="b|c")
    assert "|".join([one["actor"], one["action"]]) == "|".join([two["actor"], two["action"]])
    assert row_hash(1, GENESIS_HASH, body_json(one)) != row_hash(1, GENESIS_HASH, body_json(two))


def test_every_field_and_the_position_are_hashed():
    base = _row(1)
    digest = row_hash(1, GENESIS_HASH, body_json(base))
    for name, value in {
        "id": "aud-other",
        "timestamp": base["timestamp"] + timedelta(microseconds=1),
        "actor": "x",
        "actor_type": "User",
        "action": "x",
        "resource_type": "x",
        "resource_id": "x",
        "outcome": "denied",
        "category": "auth",
        "details": {"name": "p1", "nested": [1, 2.5, None, {"ü": "✗"}]},
    }.items():
        assert row_hash(1, GENESIS_HASH, body_json({**base, name: value})) != digest, name
    assert row_hash(2, GENESIS_HASH, body_json(base)) != digest
    assert row_hash(1, "1" * 64, body_json(base)) != digest


def test_timestamps_are_utc_with_microseconds():
    assert canonical_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000000Z"
    )
    plus_two = timezone(timedelta(hours=2))
    assert canonical_timestamp(datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=plus_two)) == (
        "2026-01-02T03:04:05.000007Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_timestamp(datetime(2026, 1, 2))  # noqa: DTZ001 - the point of the test


def test_details_are_normalised_as_the_database_returns_them():
    assert json_value({"t": (1, 2), 3: "int key", "n": float("nan"), "at": T0}) == {
        "t": [1, 2],
        "3": "int key",
        "n": None,
        "at": "2026-12-02T05:37:15.423000Z",
    }
    value = {"big": 2**70, "neg": -0.0, "f": 1e16, "s": "é😀", "l": [{"a": None}]}
    assert json_value(value) == value
    assert json.loads(json.dumps(json_value(value))) == json_value(value)
    for bad in ({"x": object()}, {(1, 2): "tuple key"}):
        with pytest.raises(ValueError, match="plain JSON"):
            json_value(bad)


# --- redaction -----------------------------------------------------------------------------


def test_secret_keys_are_redacted_at_any_depth():
    details = {
        "name": "kept",
        "password": "hunter2",
        "Client-Secret": "s1",
        "TOKEN": "t1",
        "token_id": "kept-too",
        "key_name": "kept-three",
        "empty_secret": None,
        "secret": None,
        "nested": {"private_key": "-----BEGIN", "ok": 1, "deeper": [{"refresh_token": "r"}]},
        "list": [{"api_key": "k"}, "plain", ("bootstrap_token", "not a key")],
        "credentials": {"user": "u", "pass": "p"},
    }
    assert redact(details) == {
        "name": "kept",
        "password": REDACTED,
        "Client-Secret": REDACTED,
        "TOKEN": REDACTED,
        "token_id": "kept-too",
        "key_name": "kept-three",
        "empty_secret": None,
        "secret": None,
        "nested": {"private_key": REDACTED, "ok": 1, "deeper": [{"refresh_token": REDACTED}]},
        "list": [{"api_key": REDACTED}, "plain", ["bootstrap_token", "not a key"]],
        "credentials": REDACTED,
    }
    assert details["password"] == "hunter2"  # the caller's dict is not changed


def test_prepare_hashes_the_redacted_details():
    values, body = prepare(_row(1, details={"password": "hunter2", "n": 1}))
    assert values["details"] == {"password": REDACTED, "n": 1}
    assert "hunter2" not in body
    assert body == body_json(values)


# --- walking -------------------------------------------------------------------------------


def _lines(rows):
    return [
        json.dumps({**r, "timestamp": canonical_timestamp(r["timestamp"])}) + "\n" for r in rows
    ]


def test_an_intact_chain_verifies():
    rows = _chain([_row(i) for i in range(5)])
    report = verify_export_lines(_lines(rows))
    assert (report.ok, report.checked, report.first_broken) == (True, 5, None)
    assert (report.head_seq, report.head_hash) == (5, rows[-1]["row_hash"])
    empty = verify_export_lines([])
    assert (empty.ok, empty.checked, empty.head_seq, empty.head_hash) == (True, 0, 0, GENESIS_HASH)


def test_the_first_broken_link_is_named():
    rows = _chain([_row(i) for i in range(6)])

    changed = [dict(r) for r in rows]
    changed[2]["details"] = {"name": "forged"}
    report = verify_export_lines(_lines(changed))
    assert report.checked == 2
    assert (report.first_broken.seq, report.first_broken.id) == (3, rows[2]["id"])
    assert "contents" in report.first_broken.reason

    rehashed = [dict(r) for r in changed]
    rehashed[2]["row_hash"] = row_hash(3, rows[1]["row_hash"], body_json(rehashed[2]))
    report = verify_export_lines(_lines(rehashed))
    assert (report.first_broken.seq, report.first_broken.id) == (4, rows[3]["id"])
    assert "prev_hash is not the row_hash of seq 3" in report.first_broken.reason

    holes = rows[:1] + rows[3:]
    report = verify_export_lines(_lines(holes))
    assert report.checked == 1
    assert (report.first_broken.seq, report.first_broken.id) == (4, rows[3]["id"])
    assert "seq 2..3 missing" in report.first_broken.reason

    first_gone = verify_export_lines(_lines(rows[1:]))
    assert (first_gone.first_broken.seq, first_gone.checked) == (2, 0)
    assert "seq 1 missing" in first_gone.first_broken.reason

    genesis = [dict(r) for r in rows]
    genesis[0]["prev_hash"] = "f" * 64
    assert "genesis" in verify_export_lines(_lines(genesis)).first_broken.reason


def test_the_tail_is_compared_with_the_head():
    rows = _chain([_row(i) for i in range(4)])
    walker = ChainWalker()
    for row in rows[:3]:
        assert walker.feed(row)
    report = walker.finish(4, rows[3]["row_hash"])
    assert not report.ok
    assert (report.first_broken.seq, report.first_broken.id, report.checked) == (4, None, 3)
    assert "tail" in report.first_broken.reason

    walker = ChainWalker()
    for row in rows:
        walker.feed(row)
    report = walker.finish(4, "e" * 64)
    assert (report.first_broken.seq, report.first_broken.id) == (4, rows[3]["id"])


def test_anchors():
    rows = _chain([_row(i) for i in range(4)])
    good = Anchor(seq=2, row_hash=rows[1]["row_hash"])
    assert verify_export_lines(_lines(rows), good).ok
    wrong = Anchor(seq=2, row_hash="a" * 64)
    assert verify_export_lines(_lines(rows), wrong).first_broken.seq == 2
    beyond = Anchor(seq=9, row_hash="a" * 64)
    report = verify_export_lines(_lines(rows), beyond)
    assert (report.first_broken.seq, report.checked) == (9, 4)
    assert "before the anchor" in report.first_broken.reason

    assert parse_anchor(f"12:{'AB' * 32}") == Anchor(seq=12, row_hash="ab" * 32)
    for bad in ("12", "x:" + "a" * 64, "0:" + "a" * 64, "3:abc", "3:" + "g" * 64):
        with pytest.raises(ValueError, match="anchor"):
            parse_anchor(bad)


def test_malformed_export_lines_are_reported():
    rows = _chain([_row(i) for i in range(2)])
    lines = [*_lines(rows), "not json\n"]
    report = verify_export_lines(lines)
    assert (report.ok, report.checked) == (False, 2)
    assert report.first_broken.reason.startswith("line 3:")
    report = verify_export_lines(['{"seq": 1}\n'])
    assert "line 1" in report.first_broken.reason


# --- the migration's frozen copy -----------------------------------------------------------


def test_the_migration_hashes_like_the_code():
    path = next(
        (Path(__file__).resolve().parents[2] / "src/certctl/db/migrations/versions").glob(
            "*_audit_hash_chain.py"
        )
    )
    spec = importlib.util.spec_from_file_location("audit_chain_migration", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.GENESIS == GENESIS_HASH
    for i, row in enumerate([_row(1), _row(2, details={"a|b": ["✓", 1.5]})], 1):
        naive = {**row, "timestamp": row["timestamp"].replace(tzinfo=None)}  # as SQLite reads
        expected = row_hash(i, "cd" * 32, body_json(row))
        assert module._row_hash(i, "cd" * 32, row) == expected
        assert module._row_hash(i, "cd" * 32, naive) == expected
