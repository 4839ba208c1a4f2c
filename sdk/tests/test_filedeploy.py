"""apply_plan and FileTarget against real files, real commands and a real TLS server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from certctl_sdk import filedeploy
from certctl_sdk.config import ConnectorConfig
from certctl_sdk.errors import ConfigurationError, DeploymentError
from certctl_sdk.filedeploy import (
    PENDING_MARKER,
    DeployPlan,
    FileTarget,
    ManagedFile,
    StartTls,
    TlsCheck,
    apply_plan,
    join_pem,
)
from certctl_sdk.pem import fingerprint_sha256, load_certificates
from certctl_sdk.target import DeployRequest, TargetCapability
from certctl_sdk.testing import TestCA, make_context, make_deploy_request
from certctl_sdk.testing.contracts import TargetContract

NOBODY = 65534  # Debian's nobody/nogroup; any id works for root, which owns nothing by it


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create()


def sh(script: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", script)


def counter(path: Path) -> tuple[str, ...]:
    """A command that appends a line to ``path`` (so tests can count runs)."""
    return sh(f"echo run >> '{path}'")


def runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".certctl-tmp")]


class Site:
    """A fake server's directory: cert + key files, and run counters for its commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "certs"
        self.dir.mkdir()
        self.cert = self.dir / "cert.pem"
        self.key = self.dir / "key.pem"
        self.validations = root / "validations"
        self.reloads = root / "reloads"

    def files(self, cert: bytes, key: bytes, **kw: object) -> tuple[ManagedFile, ...]:
        return (
            ManagedFile(str(self.cert), cert),
            ManagedFile(str(self.key), key, **kw),  # type: ignore[arg-type]
        )

    def plan(
        self, cert: bytes, key: bytes, key_options: dict[str, object] | None = None, **kw: object
    ) -> DeployPlan:
        """Cert + key with counted validate/reload; ``key_options`` go to the key's ManagedFile."""
        options: dict[str, object] = {
            "validate_command": counter(self.validations),
            "reload_command": counter(self.reloads),
        }
        options.update(kw)
        files = self.files(cert, key, **(key_options or {}))
        return DeployPlan(files, **options)  # type: ignore[arg-type]


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def material(ca: TestCA, name: str = "www.example.test") -> tuple[bytes, bytes, str]:
    leaf = ca.issue(name)
    return join_pem(leaf.certificate_pem, *leaf.chain_pem), leaf.key_pem.encode(), leaf.serial


# --- writing and idempotency ------------------------------------------------------------------


async def test_first_deploy_writes_files_with_safe_default_modes(site: Site, ca: TestCA) -> None:
    cert, key, _ = material(ca)
    outcome = await apply_plan(site.plan(cert, key))

    assert outcome.changed
    assert outcome.written == (str(site.cert), str(site.key))
    assert outcome.backups == ()  # nothing existed before
    assert site.cert.read_bytes() == cert
    assert site.key.read_bytes() == key
    assert stat.S_IMODE(site.cert.stat().st_mode) == 0o644
    assert stat.S_IMODE(site.key.stat().st_mode) == 0o600  # holds a private key
    assert (runs(site.validations), runs(site.reloads)) == (1, 1)
    assert leftovers(site.dir) == []


async def test_same_plan_twice_writes_and_reloads_nothing(site: Site, ca: TestCA) -> None:
    cert, key, _ = material(ca)
    await apply_plan(site.plan(cert, key))
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (site.cert, site.key)]

    outcome = await apply_plan(site.plan(cert, key))

    assert not outcome.changed
    assert outcome.written == ()
    assert outcome.backups == ()
    assert "already in place" in outcome.message
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in (site.cert, site.key)] == before
    assert (runs(site.validations), runs(site.reloads)) == (1, 1)
    assert sorted(p.name for p in site.dir.iterdir()) == ["cert.pem", "key.pem"]


async def test_only_changed_files_are_written(site: Site, ca: TestCA) -> None:
    cert, key, _ = material(ca)
    await apply_plan(site.plan(cert, key))
    key_inode = site.key.stat().st_ino
    new_cert, _, _ = material(ca)

    outcome = await apply_plan(site.plan(new_cert, key))

    assert outcome.written == (str(site.cert),)
    assert site.key.stat().st_ino == key_inode
    assert site.cert.read_bytes() == new_cert
    assert runs(site.reloads) == 2


async def test_existing_mode_and_owner_are_preserved_and_backed_up(site: Site, ca: TestCA) -> None:
    old_cert, old_key = b"old cert\n", b"old key\n"
    site.cert.write_bytes(old_cert)
    site.key.write_bytes(old_key)
    site.cert.chmod(0o604)
    site.key.chmod(0o640)
    os.chown(site.key, NOBODY, NOBODY)
    cert, key, _ = material(ca)

    outcome = await apply_plan(site.plan(cert, key))

    key_stat = site.key.stat()
    assert site.key.read_bytes() == key
    assert stat.S_IMODE(key_stat.st_mode) == 0o640
    assert (key_stat.st_uid, key_stat.st_gid) == (NOBODY, NOBODY)
    assert stat.S_IMODE(site.cert.stat().st_mode) == 0o604
    # One backup per replaced file, beside it, with the old bytes, mode and owner.
    assert len(outcome.backups) == 2
    backups = {Path(b).name.split(".certctl-bak.")[0]: Path(b) for b in outcome.backups}
    assert backups["key.pem"].parent == site.dir
    assert backups["key.pem"].read_bytes() == old_key
    backup_stat = backups["key.pem"].stat()
    assert stat.S_IMODE(backup_stat.st_mode) == 0o640
    assert (backup_stat.st_uid, backup_stat.st_gid) == (NOBODY, NOBODY)
    assert backups["cert.pem"].read_bytes() == old_cert


async def test_explicit_mode_and_owner_win_and_a_metadata_change_counts(
    site: Site, ca: TestCA
) -> None:
    cert, key, _ = material(ca)
    await apply_plan(site.plan(cert, key))

    outcome = await apply_plan(site.plan(cert, key, {"mode": 0o640, "group": str(NOBODY)}))

    assert outcome.changed
    assert outcome.written == (str(site.key),)
    key_stat = site.key.stat()
    assert stat.S_IMODE(key_stat.st_mode) == 0o640
    assert key_stat.st_gid == NOBODY
    assert key_stat.st_uid == os.geteuid()
    again = await apply_plan(site.plan(cert, key, {"mode": 0o640, "group": str(NOBODY)}))
    assert not again.changed


async def test_symlinked_destination_is_written_through(site: Site, ca: TestCA) -> None:
    archive = site.root / "archive"
    archive.mkdir()
    (archive / "cert1.pem").write_bytes(b"old\n")
    site.cert.symlink_to(archive / "cert1.pem")
    cert, key, _ = material(ca)

    outcome = await apply_plan(site.plan(cert, key))

    assert site.cert.is_symlink()
    assert (archive / "cert1.pem").read_bytes() == cert
    assert str(archive / "cert1.pem") in outcome.written


async def test_backup_dir_mirrors_paths_and_keeps_the_newest(site: Site, ca: TestCA) -> None:
    backup_dir = site.root / "backups"
    for _ in range(4):
        cert, key, _ = material(ca)
        outcome = await apply_plan(
            site.plan(cert, key, backup_dir=str(backup_dir), backup_retention=2)
        )
    mirrored = backup_dir / str(site.dir).lstrip("/")
    names = sorted(p.name for p in mirrored.iterdir())
    assert len([n for n in names if n.startswith("cert.pem.certctl-bak.")]) == 2
    assert len([n for n in names if n.startswith("key.pem.certctl-bak.")]) == 2
    assert all(Path(b).parent == mirrored for b in outcome.backups)
    assert sorted(p.name for p in site.dir.iterdir()) == ["cert.pem", "key.pem"]
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700


# --- failures and rollback --------------------------------------------------------------------


async def prepare_old(site: Site, ca: TestCA) -> tuple[bytes, bytes]:
    cert, key, _ = material(ca, "old.example.test")
    await apply_plan(site.plan(cert, key))
    site.key.chmod(0o640)
    os.chown(site.key, NOBODY, NOBODY)
    return cert, key


async def test_validate_failure_restores_files_and_reloads_again(site: Site, ca: TestCA) -> None:
    old_cert, old_key = await prepare_old(site, ca)
    chain = site.dir / "chain.pem"  # did not exist before: must disappear again
    cert, key, _ = material(ca)
    plan = DeployPlan(
        (*site.files(cert, key), ManagedFile(str(chain), b"chain\n")),
        validate_command=sh("echo 'nginx: [emerg] cannot load certificate' >&2; exit 1"),
        reload_command=counter(site.reloads),
    )

    with pytest.raises(DeploymentError) as info:
        await apply_plan(plan)

    err = info.value
    assert err.rolled_back
    assert "validate failed" in err.message
    assert "exited with status 1" in err.message
    assert "cannot load certificate" in err.message
    assert site.cert.read_bytes() == old_cert
    assert site.key.read_bytes() == old_key
    key_stat = site.key.stat()
    assert stat.S_IMODE(key_stat.st_mode) == 0o640
    assert (key_stat.st_uid, key_stat.st_gid) == (NOBODY, NOBODY)
    assert not chain.exists()
    assert runs(site.reloads) == 2  # the first deploy, then the rollback's reload
    assert leftovers(site.dir) == []


async def test_reload_failure_is_rolled_back_with_a_second_reload(site: Site, ca: TestCA) -> None:
    old_cert, _ = await prepare_old(site, ca)
    marker = site.root / "failed-once"
    # Fails the first time (the new files), succeeds the second (the restored ones).
    reload = sh(
        f"if [ -e '{marker}' ]; then echo ok >> '{site.reloads}'; exit 0; fi; "
        f"touch '{marker}'; echo 'reload: bad key' >&2; exit 3"
    )
    cert, key, _ = material(ca)

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key, reload_command=reload))

    assert info.value.rolled_back
    assert "reload failed" in info.value.message
    assert "bad key" in info.value.message
    assert "server reloaded" in info.value.message
    assert site.cert.read_bytes() == old_cert
    assert runs(site.reloads) == 2


async def test_rollback_that_cannot_reload_says_operator_action_needed(
    site: Site, ca: TestCA
) -> None:
    old_cert, _ = await prepare_old(site, ca)
    cert, key, _ = material(ca)

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key, reload_command=("/bin/false",)))

    assert not info.value.rolled_back
    assert "ROLLBACK FAILED" in info.value.message
    assert "rollback reload failed" in info.value.message
    assert site.cert.read_bytes() == old_cert  # the files still went back


async def test_command_timeout_kills_the_process_group(site: Site, ca: TestCA) -> None:
    await prepare_old(site, ca)
    cert, key, _ = material(ca)
    pid_file = site.root / "child.pid"
    slow = sh(f"sleep 30 & echo $! > '{pid_file}'; wait")
    started = time.monotonic()

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key, validate_command=slow, command_timeout=0.5))

    assert time.monotonic() - started < 10
    assert "validate failed" in info.value.message
    assert "did not finish within 0.5s" in info.value.message
    assert info.value.rolled_back
    # The grandchild died with its group. Without a reaping init (as in containers) it may
    # linger as a zombie, which is dead all the same.
    stat_file = Path(f"/proc/{int(pid_file.read_text())}/stat")
    deadline = time.monotonic() + 5
    while stat_file.exists() and stat_file.read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the validate command's child outlived the timeout"
        await asyncio.sleep(0.05)


async def test_missing_command_is_a_clean_failure(site: Site, ca: TestCA) -> None:
    old_cert, _ = await prepare_old(site, ca)
    cert, key, _ = material(ca)

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key, validate_command=("/nonexistent/nginx", "-t")))

    assert "cannot run /nonexistent/nginx" in info.value.message
    assert site.cert.read_bytes() == old_cert


async def test_missing_directory_changes_nothing(site: Site, ca: TestCA) -> None:
    cert, key, _ = material(ca)
    missing = site.root / "nope" / "cert.pem"
    plan = DeployPlan(
        (ManagedFile(str(site.cert), cert), ManagedFile(str(missing), key)),
        reload_command=counter(site.reloads),
    )

    with pytest.raises(DeploymentError) as info:
        await apply_plan(plan)

    assert info.value.rolled_back
    assert str(missing.parent) in info.value.message
    assert "does not exist" in info.value.message
    assert not site.cert.exists()
    assert not missing.parent.exists()
    assert runs(site.reloads) == 0


async def test_destination_that_is_a_directory_changes_nothing(site: Site, ca: TestCA) -> None:
    site.key.mkdir()
    cert, key, _ = material(ca)
    with pytest.raises(DeploymentError, match="not a regular file") as info:
        await apply_plan(site.plan(cert, key))
    assert info.value.rolled_back
    assert not site.cert.exists()


async def test_failure_while_writing_undoes_the_files_already_written(
    site: Site, ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_cert, old_key = await prepare_old(site, ca)
    real_write = filedeploy._write_atomically

    def failing_write(path: str, content: bytes, *args: object, **kwargs: object) -> None:
        if path == str(site.key) and content != old_key:
            raise OSError(28, "No space left on device")
        real_write(path, content, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(filedeploy, "_write_atomically", failing_write)
    cert, key, _ = material(ca)

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key))

    assert info.value.rolled_back
    assert f"write failed: cannot write {site.key}: No space left on device" in info.value.message
    assert site.cert.read_bytes() == old_cert
    assert site.key.read_bytes() == old_key
    assert runs(site.validations) == 1  # only the first deploy's


async def test_no_temp_file_survives_a_failed_write(site: Site) -> None:
    # An explicit owner the process may not set, simulated with an fchown that fails (we run as
    # root here): the failure comes after the temp file exists, which must be removed.
    original = os.fchown

    def deny(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    os.fchown = deny  # type: ignore[assignment]
    try:
        with pytest.raises(DeploymentError, match="not allowed to set the owner") as info:
            await apply_plan(DeployPlan((ManagedFile(str(site.cert), b"x\n", owner="12345"),)))
    finally:
        os.fchown = original
    assert info.value.rolled_back
    assert list(site.dir.iterdir()) == []


async def test_command_output_is_redacted_of_pem_blocks(site: Site, ca: TestCA) -> None:
    cert, key, _ = material(ca)
    leak = sh(f"cat '{site.key}' >&2; echo 'after the key' >&2; exit 1")

    with pytest.raises(DeploymentError) as info:
        await apply_plan(site.plan(cert, key, validate_command=leak))

    body = key.decode().splitlines()[1]
    assert body not in info.value.message
    assert "PRIVATE KEY redacted" in info.value.message
    assert "after the key" in info.value.message


async def test_cancellation_rolls_back(site: Site, ca: TestCA) -> None:
    old_cert, _ = await prepare_old(site, ca)
    cert, key, _ = material(ca)
    task = asyncio.create_task(apply_plan(site.plan(cert, key, validate_command=sh("sleep 30"))))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if site.cert.read_bytes() == cert:
            break
    assert site.cert.read_bytes() == cert  # the new file is live while validate runs
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task

    assert site.cert.read_bytes() == old_cert
    assert runs(site.reloads) == 2
    assert leftovers(site.dir) == []


async def test_concurrent_deployments_to_one_directory_are_serialised(
    site: Site, ca: TestCA
) -> None:
    log = site.root / "validate.log"
    validate = sh(f"echo start >> '{log}'; sleep 0.3; echo end >> '{log}'")
    cert, key, _ = material(ca)
    plan = site.plan(cert, key, validate_command=validate)

    first, second = await asyncio.gather(apply_plan(plan), apply_plan(plan))

    assert log.read_text().split() == ["start", "end"]  # one validation, never interleaved
    assert sorted([first.changed, second.changed]) == [False, True]


@pytest.mark.parametrize(
    ("plan", "complaint"),
    [
        (DeployPlan(()), "no files"),
        (DeployPlan((ManagedFile("relative/cert.pem", b""),)), "must be absolute"),
        (DeployPlan((ManagedFile("/tmp/a", b""), ManagedFile("/tmp/./a", b""))), "twice"),
        (DeployPlan((ManagedFile("/tmp/a", b""),), reload_command=()), "reload command is empty"),
        (DeployPlan((ManagedFile("/tmp/a", b"", owner="no-such-user-xyz"),)), "unknown user"),
        (DeployPlan((ManagedFile("/tmp/a", b"", group="no-such-group-xyz"),)), "unknown group"),
        (DeployPlan((ManagedFile("/tmp/a", b"", mode=0o10000),)), "invalid file mode"),
        (DeployPlan((ManagedFile("/tmp/a", b""),), backup_retention=0), "backup_retention"),
        (DeployPlan((ManagedFile("/tmp/a", b""),), backup_dir="rel"), "backup_dir"),
    ],
)
async def test_invalid_plans_are_configuration_errors(plan: DeployPlan, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        await apply_plan(plan)


def test_managed_file_repr_never_shows_content() -> None:
    text = repr(ManagedFile("/etc/k.pem", b"-----BEGIN PRIVATE KEY-----\nSECRETBODY\n", mode=0o600))
    assert "SECRETBODY" not in text
    assert "/etc/k.pem" in text
    assert "0o600" in text


def test_join_pem_normalises_newlines() -> None:
    assert join_pem("a\n\n", "", "b") == b"a\nb\n"


# --- the TLS check ----------------------------------------------------------------------------


async def test_tls_check_confirms_the_new_certificate(site: Site, ca: TestCA, tls_server) -> None:
    _old_cert, _old_key = await prepare_old(site, ca)
    server = await tls_server(site.cert, site.key, site.reloads)
    leaf = ca.issue("www.example.test")
    check = TlsCheck(
        "127.0.0.1",
        server.port,
        "www.example.test",
        leaf.fingerprint_sha256,
        timeout=5,
        attempts=3,
        delay=0.05,
    )

    outcome = await apply_plan(
        site.plan(join_pem(leaf.certificate_pem), leaf.key_pem.encode(), tls_check=check)
    )

    assert outcome.verified_serial == leaf.serial
    assert f"serial {leaf.serial}" in outcome.message
    assert server.handshakes >= 1


async def test_tls_check_accepts_colon_separated_upper_case_fingerprints(
    site: Site, ca: TestCA, tls_server
) -> None:
    await prepare_old(site, ca)
    server = await tls_server(site.cert, site.key, site.reloads)
    leaf = ca.issue("www.example.test")
    fingerprint = ":".join(leaf.fingerprint_sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    check = TlsCheck("127.0.0.1", server.port, None, fingerprint, attempts=2, delay=0.05)

    outcome = await apply_plan(
        site.plan(leaf.certificate_pem.encode(), leaf.key_pem.encode(), tls_check=check)
    )

    assert outcome.verified_serial == leaf.serial


async def test_tls_mismatch_rolls_back_and_the_server_serves_the_old_certificate(
    site: Site, ca: TestCA, tls_server
) -> None:
    old_cert, old_key = await prepare_old(site, ca)
    server = await tls_server(site.cert, site.key, site.reloads)
    old_generation = server.generation()
    leaf = ca.issue("www.example.test")
    # The reload "succeeds" but the server does not pick the new files up.
    lazy_reload = ("/bin/true",)
    check = TlsCheck(
        "127.0.0.1", server.port, None, leaf.fingerprint_sha256, timeout=2, attempts=3, delay=0.05
    )

    with pytest.raises(DeploymentError) as info:
        await apply_plan(
            site.plan(
                leaf.certificate_pem.encode(),
                leaf.key_pem.encode(),
                reload_command=lazy_reload,
                tls_check=check,
            )
        )

    err = info.value
    assert err.rolled_back
    assert "TLS check failed" in err.message
    assert f"expected sha256:{leaf.fingerprint_sha256}" in err.message
    assert "after 3 attempts" in err.message
    assert server.handshakes == 3
    assert site.cert.read_bytes() == old_cert
    assert site.key.read_bytes() == old_key
    assert server.generation() == old_generation


async def test_tls_mismatch_after_a_real_reload_reloads_the_old_files(
    site: Site, ca: TestCA, tls_server
) -> None:
    old_cert, _ = await prepare_old(site, ca)
    server = await tls_server(site.cert, site.key, site.reloads)
    leaf = ca.issue("www.example.test")
    wrong = TlsCheck("127.0.0.1", server.port, None, "00" * 32, attempts=2, delay=0.05)

    with pytest.raises(DeploymentError, match="TLS check failed"):
        await apply_plan(
            site.plan(leaf.certificate_pem.encode(), leaf.key_pem.encode(), tls_check=wrong)
        )

    # Reload, check, rollback reload: the server is back on the old files.
    assert runs(site.reloads) == 3
    served = await filedeploy._peer_certificate(
        TlsCheck("127.0.0.1", server.port, None, "", timeout=2)
    )
    assert hashlib.sha256(served).hexdigest() == fingerprint_sha256(load_certificates(old_cert)[0])


async def test_tls_check_against_a_closed_port_fails_and_rolls_back(site: Site, ca: TestCA) -> None:
    old_cert, _ = await prepare_old(site, ca)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    leaf = ca.issue("www.example.test")
    check = TlsCheck("127.0.0.1", port, None, leaf.fingerprint_sha256, attempts=2, delay=0.01)

    with pytest.raises(DeploymentError) as info:
        await apply_plan(
            site.plan(leaf.certificate_pem.encode(), leaf.key_pem.encode(), tls_check=check)
        )

    assert "cannot complete a TLS handshake with 127.0.0.1" in info.value.message
    assert site.cert.read_bytes() == old_cert


@pytest.mark.parametrize("protocol", list(StartTls))
async def test_tls_check_speaks_starttls(
    site: Site, ca: TestCA, tls_server, protocol: StartTls
) -> None:
    await prepare_old(site, ca)
    server = await tls_server(site.cert, site.key, site.reloads, starttls=protocol)
    leaf = ca.issue("mail.example.test")
    check = TlsCheck(
        "127.0.0.1",
        server.port,
        "mail.example.test",
        leaf.fingerprint_sha256,
        timeout=5,
        attempts=2,
        delay=0.05,
        starttls=protocol,
    )

    outcome = await apply_plan(
        site.plan(leaf.certificate_pem.encode(), leaf.key_pem.encode(), tls_check=check)
    )

    assert outcome.verified_serial == leaf.serial


async def test_starttls_refusal_is_reported(site: Site, ca: TestCA) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        writer.write(b"250 hi\r\n")
        await reader.readline()
        writer.write(b"454 TLS not available\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        check = TlsCheck("127.0.0.1", port, None, "00" * 32, attempts=1, starttls=StartTls.SMTP)
        with pytest.raises(filedeploy._StepError, match=r"refused STARTTLS.*454"):
            await filedeploy._verify_tls(check)
    finally:
        server.close()
        await server.wait_closed()


# --- FileTarget ---------------------------------------------------------------------------------


class DirConfig(ConnectorConfig, frozen=True, kw_only=True):
    directory: str
    reloads: str


class DirTarget(FileTarget[DirConfig]):
    """The smallest useful file target: fullchain + key in one directory, a counted reload."""

    kind = "test-dir"
    display_name = "Test directory"
    Config = DirConfig

    def plan(self, request: DeployRequest, private_key_pem: str | None) -> DeployPlan:
        assert private_key_pem is not None
        return DeployPlan(
            (
                ManagedFile(
                    f"{self.config.directory}/fullchain.pem",
                    join_pem(request.certificate_pem, *request.chain_pem),
                ),
                ManagedFile(f"{self.config.directory}/key.pem", private_key_pem.encode()),
            ),
            reload_command=counter(Path(self.config.reloads)),
        )


class TestDirTargetContract(TargetContract):
    """FileTarget passes the target contract (and so shows the contract on a real target)."""

    @pytest.fixture
    def target(self, tmp_path: Path) -> DirTarget:
        (tmp_path / "srv").mkdir()
        config = DirConfig(directory=str(tmp_path / "srv"), reloads=str(tmp_path / "reloads"))
        return DirTarget(config, make_context())

    @pytest.fixture
    def deploy_request(self, ca: TestCA) -> DeployRequest:
        return make_deploy_request(ca.issue("www.example.test"))


async def test_file_target_deploy_resolves_the_key_and_reports(tmp_path: Path, ca: TestCA) -> None:
    (tmp_path / "srv").mkdir()
    context = make_context()
    target = DirTarget(
        DirConfig(directory=str(tmp_path / "srv"), reloads=str(tmp_path / "reloads")), context
    )
    leaf = ca.issue("www.example.test")

    result = await target.deploy(make_deploy_request(leaf))

    assert result.changed
    assert (tmp_path / "srv" / "key.pem").read_text() == leaf.key_pem
    assert result.details["written"].endswith("key.pem")
    assert context.secrets.resolved == 1  # type: ignore[attr-defined]
    assert runs(tmp_path / "reloads") == 1


async def test_file_target_without_a_key_refuses_unless_agent_key(
    tmp_path: Path, ca: TestCA
) -> None:
    target = DirTarget(
        DirConfig(directory=str(tmp_path), reloads=str(tmp_path / "r")), make_context()
    )
    request = make_deploy_request(ca.issue("www.example.test"), with_key=False)

    with pytest.raises(DeploymentError, match="need the private key") as info:
        await target.deploy(request)
    assert info.value.rolled_back

    class AgentTarget(DirTarget):
        capabilities = frozenset({TargetCapability.AGENT_KEY})

        def plan(self, request: DeployRequest, private_key_pem: str | None) -> DeployPlan:
            assert private_key_pem is None
            return DeployPlan((ManagedFile(f"{self.config.directory}/c.pem", b"c\n"),))

    agent = AgentTarget(
        DirConfig(directory=str(tmp_path), reloads=str(tmp_path / "r")), make_context()
    )
    assert (await agent.deploy(request)).changed


async def test_smtp_server_refusing_service_fails_fast() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554-busy\r\n554 go away\r\n")
        await writer.drain()
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        check = TlsCheck(
            "127.0.0.1", port, None, "00" * 32, timeout=5, attempts=1, starttls=StartTls.SMTP
        )
        started = time.monotonic()
        with pytest.raises(filedeploy._StepError, match="unexpected greeting"):
            await filedeploy._verify_tls(check)
        assert time.monotonic() - started < 2
    finally:
        server.close()
        await server.wait_closed()


# --- a deploying process killed between writing and activating --------------------------------


async def test_files_written_by_a_killed_deployment_are_activated_next_time(
    site: Site, ca: TestCA, tmp_path: Path
) -> None:
    cert, key, _ = material(ca)
    (tmp_path / "cert.in").write_bytes(cert)
    (tmp_path / "key.in").write_bytes(key)
    # A real crash: the deploying process is SIGKILLed by its own validate command, after the
    # files were written and before anything reloaded the server.
    child = f"""
import asyncio
from pathlib import Path
from certctl_sdk.filedeploy import DeployPlan, ManagedFile, apply_plan
plan = DeployPlan(
    (ManagedFile({str(site.cert)!r}, Path({str(tmp_path / "cert.in")!r}).read_bytes()),
     ManagedFile({str(site.key)!r}, Path({str(tmp_path / "key.in")!r}).read_bytes())),
    validate_command=("/bin/sh", "-c", "kill -9 $PPID; sleep 5"),
    reload_command=("/bin/sh", "-c", "echo run >> {site.reloads}"),
)
asyncio.run(apply_plan(plan))
"""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", child)
    assert await proc.wait() == -signal.SIGKILL
    assert site.cert.read_bytes() == cert  # written, never activated
    assert runs(site.reloads) == 0
    assert (site.dir / PENDING_MARKER).exists()

    outcome = await apply_plan(site.plan(cert, key))

    assert outcome.changed and outcome.written == ()
    assert "activated after an interrupted deployment" in outcome.message
    assert (runs(site.validations), runs(site.reloads)) == (1, 1)
    assert not (site.dir / PENDING_MARKER).exists()
    again = await apply_plan(site.plan(cert, key))  # and from then on, idempotent as before
    assert not again.changed and runs(site.reloads) == 1
