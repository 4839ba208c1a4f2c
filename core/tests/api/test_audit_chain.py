"""The hash-chained audit trail: concurrent writers, tampering found, export, permissions."""

import asyncio
import csv
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import create_async_engine

from certctl.cli import main
from certctl.db.base import utcnow
from certctl.db.models import AuditEvent, SystemFlag
from certctl.domain.audit.canonical import body_json, row_hash
from certctl.domain.audit.monitor import verify_chain_and_report
from certctl.domain.audit.redact import REDACTED
from certctl.domain.audit.service import audit_row, record, record_many
from certctl.domain.audit.verify import verify_export_lines
from certctl.domain.auth.actor import Actor

TESTER = Actor(name="tester", type="APIKey")
DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


async def verify(client, headers, **params):
    r = await client.get("/api/v1/audit/verify", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def chain_rows(runtime):
    """(seq, id, prev_hash, row_hash) in seq order, straight from the table."""
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT seq, id, prev_hash, row_hash FROM audit_events ORDER BY seq")
        )
        return [tuple(r) for r in rows]


async def write(runtime, count, *, action="t.write"):
    """``count`` rows, alternating record() and record_many() transactions."""
    done = 0
    while done < count:
        async with runtime.sessions.begin() as session:
            if done % 2:
                record(session, TESTER, action, resource_type="t", resource_id=str(done))
                done += 1
            else:
                n = min(2, count - done)
                await record_many(
                    session,
                    [
                        audit_row(TESTER, action, resource_type="t", resource_id=str(done + k))
                        for k in range(n)
                    ],
                )
                done += n


async def tamper(database_url, *statements):
    """Act as a database superuser: switch the append-only triggers off, change, switch back."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                triggers = []
            else:
                triggers = (
                    await conn.execute(
                        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
                    )
                ).all()
                for name, _ in triggers:
                    await conn.execute(sa.text(f"DROP TRIGGER {name}"))
            for statement in statements:
                await conn.execute(sa.text(statement))
            for _, sql in triggers:
                await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


async def cli(*args):
    result = await asyncio.to_thread(CliRunner().invoke, main, ["audit", "verify", *args])
    return result.exit_code, result.stdout


# --- writing -------------------------------------------------------------------------------


async def test_concurrent_mixed_writes_keep_one_gapless_chain(client, admin_headers):
    """Tasks interleave record()/record_many() with updates of one shared row, some roll back.

    Half the transactions lock the shared row before recording, half change it through the ORM
    after recording, so the change is flushed at commit: a chain that locked its head when the
    row is recorded, or before the commit's flush, would deadlock here on PostgreSQL.
    """
    runtime = client.runtime
    async with runtime.sessions.begin() as session:
        session.add(SystemFlag(name="audit-test", value="0", created_at=utcnow()))
    bump = sa.update(SystemFlag).where(SystemFlag.name == "audit-test")
    committed = 0

    async def task(t):
        nonlocal committed
        for i in range(4):
            async with runtime.sessions() as session:
                if (t + i) % 2:
                    # The ORM change stays pending until commit: it must be flushed (and its
                    # row lock taken) before the chain head is locked.
                    record(session, TESTER, "t.one", resource_type="t", resource_id=f"{t}-{i}")
                    flag = await session.get(SystemFlag, "audit-test")
                    flag.value = f"{t}-{i}"
                    n = 1
                else:
                    await session.execute(bump.values(value=f"{t}-{i}"))
                    await record_many(
                        session,
                        [
                            audit_row(TESTER, "t.many", resource_type="t", resource_id=f"{t}-{k}")
                            for k in range(3)
                        ],
                    )
                    n = 3
                if i == 2 and t % 3 == 0:
                    await session.rollback()
                    continue
                await session.commit()
                committed += n

    async def api(i):
        r = await client.post("/api/v1/profiles", json={"name": f"p{i}"}, headers=admin_headers)
        assert r.status_code == 201
        r = await client.post("/api/v1/profiles", json={"name": f"p{i}"})
        assert r.status_code == 401

    await asyncio.gather(*(task(t) for t in range(6)), *(api(i) for i in range(4)))
    committed += 8
    rows = await chain_rows(runtime)
    assert [r[0] for r in rows] == list(range(1, committed + 1))
    assert [r[2] for r in rows[1:]] == [r[3] for r in rows[:-1]]
    report = await verify(client, admin_headers)
    assert report == {
        "ok": True,
        "checked": committed,
        "first_broken": None,
        "head_seq": committed,
        "head_hash": rows[-1][3],
    }


async def test_rows_are_chained_in_commit_order_and_lock_nothing_before(client, admin_headers):
    runtime = client.runtime
    postgres = runtime.engine.dialect.name == "postgresql"
    async with runtime.sessions() as early:
        record(early, TESTER, "recorded.first", resource_type="t", resource_id="a")
        await early.execute(sa.select(1))  # the transaction is open
        if postgres:
            async with runtime.engine.connect() as conn:
                held = await conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'audit_chain_head' AND l.database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())"
                    )
                )
            assert held == 0
        async with runtime.sessions.begin() as late:
            record(late, TESTER, "recorded.second", resource_type="t", resource_id="b")
        await early.commit()
    rows = (await client.get("/api/v1/audit", headers=admin_headers)).json()["data"]
    assert {r["action"]: r["seq"] for r in rows} == {"recorded.second": 1, "recorded.first": 2}


async def test_two_runtimes_on_one_database_share_the_chain(app_factory, admin_headers):
    first = await app_factory()
    second = await app_factory()
    assert first.runtime.engine is not second.runtime.engine

    async def through(client, n):
        for i in range(n):
            r = await client.post(
                "/api/v1/profiles",
                json={"name": f"{id(client)}-{i}"},
                headers=admin_headers,
            )
            assert r.status_code == 201

    await asyncio.gather(
        through(first, 6),
        through(second, 6),
        write(first.runtime, 10),
        write(second.runtime, 10),
    )
    for client in (first, second):
        report = await verify(client, admin_headers)
        assert (report["ok"], report["checked"], report["head_seq"]) == (True, 32, 32)


async def test_rolled_back_savepoints_and_direct_adds(client, admin_headers):
    runtime = client.runtime
    async with runtime.sessions() as session:
        record(session, TESTER, "kept.before", resource_type="t", resource_id="1")
        async with session.begin_nested() as savepoint:
            record(session, TESTER, "dropped", resource_type="t", resource_id="2")
            await savepoint.rollback()
        async with session.begin_nested():
            record(session, TESTER, "kept.nested", resource_type="t", resource_id="3")
        values = audit_row(TESTER, "kept.direct", resource_type="t", resource_id="4")
        del values["timestamp"]  # left to the column default
        direct = AuditEvent(**values)
        session.add(direct)
        await session.flush()  # an unchained row must not reach the table early
        assert await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
        await session.commit()
    async with runtime.sessions() as session:
        actions = (
            await session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq))
        ).all()
    assert actions == ["kept.before", "kept.nested", "kept.direct"]
    assert direct.seq == 3 and len(direct.row_hash) == 64
    assert (await verify(client, admin_headers))["ok"] is True


async def test_details_are_redacted_before_hashing(client, admin_headers, database_url):
    async with client.runtime.sessions.begin() as session:
        record(
            session,
            TESTER,
            "auth.sso.login",
            resource_type="user",
            resource_id="usr-1",
            category="auth",
            details={"provider": "corp", "id_token": "eyJhbGciOi.secret", "x": [{"secret": "s"}]},
        )
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT * FROM audit_events"))).all()
    finally:
        await engine.dispose()
    assert "eyJhbGciOi" not in repr(stored)
    assert '"s"' not in repr(stored)
    [event] = (await client.get("/api/v1/audit", headers=admin_headers)).json()["data"]
    assert event["details"] == {
        "provider": "corp",
        "id_token": REDACTED,
        "x": [{"secret": REDACTED}],
    }
    assert (await verify(client, admin_headers))["ok"] is True


# --- tampering -----------------------------------------------------------------------------

SCENARIOS = [
    "change_detail",
    "change_and_rehash",
    "delete_middle",
    "delete_tail",
    "delete_tail_and_rewind_head",
    "delete_head",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_tampering_is_found_at_the_first_broken_link(
    client, admin_headers, database_url, scenario
):
    await write(client.runtime, 6)
    rows = await chain_rows(client.runtime)
    seqs = {seq: (row_id, prev, digest) for seq, row_id, prev, digest in rows}
    intact = await verify(client, admin_headers)
    anchor = f"{intact['head_seq']}:{intact['head_hash']}"

    def row_id(seq):
        return seqs[seq][0]

    if scenario == "change_detail":
        await tamper(
            database_url,
            "UPDATE audit_events SET details = '{\"forged\": true}' WHERE seq = 3",
        )
        expected = {"seq": 3, "id": row_id(3)}, 2, "contents"
    elif scenario == "change_and_rehash":
        # A careful attacker recomputes the changed row's hash; the next link gives it away.
        async with client.runtime.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(*AuditEvent.__table__.c).where(AuditEvent.seq == 3)))
                .mappings()
                .one()
            )
        forged = row_hash(3, row["prev_hash"], body_json({**row, "actor": "someone"}))
        await tamper(
            database_url,
            f"UPDATE audit_events SET actor = 'someone', row_hash = '{forged}' WHERE seq = 3",  # noqa: S608
        )
        expected = {"seq": 4, "id": row_id(4)}, 3, "prev_hash is not the row_hash of seq 3"
    elif scenario == "delete_middle":
        await tamper(database_url, "DELETE FROM audit_events WHERE seq = 4")
        expected = {"seq": 5, "id": row_id(5)}, 3, "seq 4 missing"
    elif scenario == "delete_tail":
        await tamper(database_url, "DELETE FROM audit_events WHERE seq = 6")
        expected = {"seq": 6, "id": None}, 5, "tail"
    elif scenario == "delete_tail_and_rewind_head":
        await tamper(
            database_url,
            "DELETE FROM audit_events WHERE seq = 6",
            f"UPDATE audit_chain_head SET last_seq = 5, last_hash = '{seqs[5][2]}'",  # noqa: S608
        )
        # Undetectable from the database alone; the anchor kept outside it finds it.
        assert (await verify(client, admin_headers))["ok"] is True
        assert (await cli("--database-url", database_url))[0] == 0
        expected = {"seq": 6, "id": None}, 5, "before the anchor"
    else:
        await tamper(database_url, "DELETE FROM audit_chain_head")
        expected = {"seq": None, "id": None}, 0, "head row is missing"

    params = {"anchor": anchor} if scenario == "delete_tail_and_rewind_head" else {}
    report = await verify(client, admin_headers, **params)
    broken, checked, reason = expected
    assert report["ok"] is False
    assert {"seq": report["first_broken"]["seq"], "id": report["first_broken"]["id"]} == broken
    assert reason in report["first_broken"]["reason"]
    assert report["checked"] == checked

    cli_args = ["--database-url", database_url, *(["--anchor", anchor] if params else [])]
    code, output = await cli(*cli_args)
    assert code == 1
    assert json.loads(output) == report


async def test_tamper_with_the_triggers_on_is_refused(client, database_url):
    await write(client.runtime, 2)
    engine = create_async_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        for statement in (
            "UPDATE audit_chain_head SET last_seq = 1",
            "UPDATE audit_chain_head SET id = 2",
            "DELETE FROM audit_chain_head",
            *(["TRUNCATE audit_chain_head"] if postgres else []),
        ):
            with pytest.raises(sa.exc.DBAPIError, match="only moves forward"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(statement))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(
                    sa.text("INSERT INTO audit_chain_head VALUES (2, 0, :h)"), {"h": "0" * 64}
                )
    finally:
        await engine.dispose()


async def test_the_verification_loop_logs_and_records_a_break(client, database_url, caplog):
    runtime = client.runtime
    await write(runtime, 3)
    with caplog.at_level(logging.INFO, logger="certctl.audit"):
        assert await verify_chain_and_report(runtime) == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await tamper(database_url, "DELETE FROM audit_events WHERE seq = 2")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="certctl.audit"):
        assert await verify_chain_and_report(runtime) == 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "audit chain broken at seq 3" in error.getMessage()
    async with runtime.sessions() as session:
        row = await session.scalar(
            sa.select(AuditEvent).where(AuditEvent.action == "audit.chain.broken")
        )
    assert (row.seq, row.resource_id, row.outcome, row.category) == (4, "3", "failure", "audit")
    assert row.actor == "audit-chain-verify"
    assert row.details["first_broken"]["seq"] == 3


async def test_the_loop_is_scheduled(client):
    from certctl.scheduler.loops import builtin_loops

    [spec] = [s for s in builtin_loops(client.runtime) if s.name == "audit-chain-verify"]
    assert (spec.interval, spec.leader_only, spec.run_at_start) == (6 * 3600.0, True, True)


# --- export --------------------------------------------------------------------------------


async def test_export_round_trips_and_verifies_offline(client, admin_headers, tmp_path):
    await write(client.runtime, 5)
    for i in range(3):
        await client.post("/api/v1/profiles", json={"name": f"e{i}"}, headers=admin_headers)
    await client.post("/api/v1/profiles", json={"name": "x"})  # a 401: category auth

    r = await client.get("/api/v1/audit/export", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    lines = r.text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [row["seq"] for row in rows] == list(range(1, 11))
    assert rows[-1]["action"] == "audit.export"  # the export records itself first
    assert rows[-1]["details"] == {"format": "ndjson", "filters": {}}
    assert r.headers["x-certctl-audit-head-seq"] == "10"
    assert r.headers["x-certctl-audit-head-hash"] == rows[-1]["row_hash"]

    # Same rows as the API shows, field for field.
    listed = {
        e["id"]: e
        for e in (await client.get("/api/v1/audit?per_page=500", headers=admin_headers)).json()[
            "data"
        ]
    }
    for row in rows:
        shown = listed[row["id"]]
        assert {k: v for k, v in row.items() if k != "timestamp"} == {
            k: v for k, v in shown.items() if k != "timestamp"
        }
        assert row["timestamp"][:19] == shown["timestamp"][:19]

    report = verify_export_lines(lines)
    assert (report.ok, report.checked, report.head_hash) == (True, 10, rows[-1]["row_hash"])
    path = tmp_path / "export.ndjson"
    path.write_text(r.text)
    code, output = await cli("--file", str(path), "--anchor", f"10:{rows[-1]['row_hash']}")
    assert (code, json.loads(output)["ok"]) == (0, True)

    # The documented recipe, run as an auditor would.
    recipe = re.search(
        r"\*\*Offline verification\.\*\*.*?```python\n(.*?)```", DOC.read_text(), re.S
    )
    script = tmp_path / "verify.py"
    script.write_text(recipe.group(1))
    ok = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"intact: 10 rows, last row_hash {rows[-1]['row_hash']}"

    forged = [json.loads(line) for line in lines]
    forged[4]["details"] = {"forged": True}
    path.write_text("".join(json.dumps(row) + "\n" for row in forged))
    bad = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True)
    assert bad.returncode == 1 and f"broken at seq 5 ({rows[4]['id']})" in bad.stderr
    code, output = await cli("--file", str(path))
    assert code == 1 and json.loads(output)["first_broken"]["seq"] == 5


async def test_export_filters_and_csv(client, admin_headers):
    await write(client.runtime, 3)
    await client.post("/api/v1/profiles", json={"name": "x"})  # 401, category auth
    await client.post(
        "/api/v1/profiles", json={"name": "=cmd|' /C calc'!A0"}, headers=admin_headers
    )

    r = await client.get("/api/v1/audit/export", params={"category": "auth"}, headers=admin_headers)
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert [(row["action"], row["outcome"]) for row in rows] == [("api.post", "denied")]
    # A filtered export is no contiguous chain, but each row still proves its own contents.
    assert row_hash(rows[0]["seq"], rows[0]["prev_hash"], body_json(rows[0])) == rows[0]["row_hash"]

    r = await client.get(
        "/api/v1/audit/export",
        params={"format": "csv", "action": "profile.create"},
        headers=admin_headers,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0][:3] == ["seq", "id", "timestamp"]
    [row] = table[1:]
    record_ = dict(zip(table[0], row, strict=True))
    assert record_["action"] == "profile.create"
    assert json.loads(record_["details"]) == {"name": "=cmd|' /C calc'!A0"}

    since = utcnow().isoformat()
    r = await client.get("/api/v1/audit/export", params={"since": since}, headers=admin_headers)
    assert [json.loads(line)["action"] for line in r.text.splitlines()] == ["audit.export"]

    for bad in ({"format": "xml"}, {"since": "2026-01-01T00:00:00"}):
        r = await client.get("/api/v1/audit/export", params=bad, headers=admin_headers)
        assert r.status_code == 400, r.text
    r = await client.get("/api/v1/audit/verify", params={"anchor": "x"}, headers=admin_headers)
    assert r.status_code == 400 and "anchor" in r.json()["detail"]


async def test_csv_cells_that_look_like_formulas_are_defused(client, admin_headers):
    async with client.runtime.sessions.begin() as session:
        record(session, Actor(name="-2+3", type="APIKey"), "x", resource_type="t", resource_id="@a")
    r = await client.get("/api/v1/audit/export", params={"format": "csv"}, headers=admin_headers)
    header, first, _export = list(csv.reader(io.StringIO(r.text)))
    values = dict(zip(header, first, strict=True))
    assert (values["actor"], values["resource_id"]) == ("'-2+3", "'@a")


# --- permissions ---------------------------------------------------------------------------


async def test_who_may_read_verify_and_export(client, admin_headers, viewer_headers):
    r = await client.post(
        "/api/v1/auth/keys",
        json={"name": "auditor-1", "roles": ["r-auditor"]},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    auditor = {"Authorization": f"Bearer {r.json()['key']}"}

    for headers in (viewer_headers, auditor, admin_headers):
        assert (await client.get("/api/v1/audit", headers=headers)).status_code == 200
        assert (await client.get("/api/v1/audit/verify", headers=headers)).status_code == 200
    r = await client.get("/api/v1/audit/export", headers=viewer_headers)
    assert r.status_code == 403 and "audit.export" in r.json()["detail"]
    for headers in (auditor, admin_headers):
        assert (await client.get("/api/v1/audit/export", headers=headers)).status_code == 200
    for path in ("/api/v1/audit/verify", "/api/v1/audit/export"):
        assert (await client.get(path)).status_code == 401
    # The auditor reads the trail and nothing else.
    r = await client.post("/api/v1/profiles", json={"name": "no"}, headers=auditor)
    assert r.status_code == 403
    assert (await client.get("/api/v1/profiles", headers=auditor)).status_code == 403

    auth = (await client.get("/api/v1/audit", params={"category": "auth"}, headers=auditor)).json()[
        "data"
    ]
    assert {(e["action"], e["outcome"]) for e in auth} >= {
        ("auth.key.create", "success"),
        ("api.post", "denied"),
    }
    assert all(e["category"] == "auth" for e in auth)
    exports = (
        await client.get("/api/v1/audit", params={"action": "audit.export"}, headers=auditor)
    ).json()["data"]
    assert sorted(e["actor"] for e in exports) == ["admin", "auditor-1"]


async def test_concurrent_verifications_share_one_walk(client):
    await write(client.runtime, 3)
    verifier = client.runtime.audit_chain
    first, second, other = await asyncio.gather(
        verifier.verify(), verifier.verify(), verifier.verify(None)
    )
    assert first is second is other  # one walk, one report
    assert (first.ok, first.checked) == (True, 3)
    again = await verifier.verify()
    assert again is not first and again == first  # a later call walks again
