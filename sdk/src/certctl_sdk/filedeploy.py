"""Deploy certificate files to a server atomically, idempotently and reversibly.

Every file-based target (nginx, Apache, HAProxy, Postfix, Dovecot, Traefik...) has the same flow:
write a few files, check the server's configuration, reload it, and prove the endpoint serves the
new certificate, restoring the old files if any step fails. A target describes *what* to deploy
as a :class:`DeployPlan` and :func:`apply_plan` does the rest. :class:`FileTarget` wires that into
the :class:`~certctl_sdk.target.Target` contract so a subclass only writes ``plan()``.

What :func:`apply_plan` guarantees, in order:

1. **Serialised.** Each destination directory is ``flock``-ed (in sorted order, so two plans
   never deadlock) for the whole deployment: two deployments to the same files, from this
   process or another one, run one after the other.
2. **Idempotent.** When every file already holds the planned bytes and the mode and
   ownership the plan asks for, nothing is written, validated, reloaded or checked, and the
   outcome says ``changed=False``. The TLS check is skipped too: it would only re-prove what the
   deployment that wrote the files proved, and drift is the core's health checks' business.
   A marker (``.certctl-activation-pending`` in the first directory) exists from before the
   first write until the deployment is activated or rolled back: if the process died in between
   (files written, server never reloaded), the next deployment finds the marker and validates,
   reloads and checks even though the files are already in place.
3. **Backed up.** Before anything is written, each existing file that will change is copied to
   ``<path>.certctl-bak.<UTC stamp>`` beside it or, when ``backup_dir`` is set, to the same name
   under ``<backup_dir>/<the file's directory>``. Set ``backup_dir`` when the server loads every
   file of the directory (HAProxy ``crt`` directories). Backups keep the file's mode and owner;
   after a successful deployment only the newest ``backup_retention`` of each file are kept.
4. **Atomic per file.** Content goes to a hidden temporary file in the same directory, created
   0600, then gets its mode and owner, is fsync-ed and renamed over the destination; the directory
   is fsync-ed after the renames. A server never reads a half-written file.
5. **Mode and owner.** Per file: what :class:`ManagedFile` says, else what the existing file has,
   else the process's user with mode 0600 when the content holds a PEM private key and 0644
   otherwise (decided by content, never by file name). Ownership is changed only where needed;
   an explicit owner the process cannot set is an error, an inherited one is kept when possible.
6. **Checked.** ``validate_command`` (e.g. ``nginx -t``), then ``reload_command``, then the
   optional :class:`TlsCheck`, which retries because reloads finish asynchronously.
7. **Reversible.** On any failure, including cancellation, every file written is restored
   byte-for-byte with its old mode and owner (or removed if it did not exist), the reload command
   runs again so the server serves the old certificate, and :class:`DeploymentError` names the
   failing step with the tail of the command's output (PEM blocks redacted).

``DeploymentError.rolled_back`` is True whenever the live files are as they were before the call
(never touched, or restored and reloaded) and False only when the restore or the second reload
failed: then an operator must look. Invalid plans raise :class:`ConfigurationError`.

Commands run without a shell (argument tuples), with stdin closed, in a new session so a timeout
kills the whole process group. POSIX only: it relies on ``flock``, ``fchown`` and process groups.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import re
import signal
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec
from cryptography import x509

from certctl_sdk.config import ConnectorConfig
from certctl_sdk.errors import ConfigurationError, DeploymentError
from certctl_sdk.target import DeployRequest, DeployResult, Target, TargetCapability

__all__ = [
    "PENDING_MARKER",
    "DeployOutcome",
    "DeployPlan",
    "FileTarget",
    "ManagedFile",
    "StartTls",
    "TlsCheck",
    "apply_plan",
    "join_pem",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
T = TypeVar("T")
Logger = logging.Logger | logging.LoggerAdapter[Any]

DEFAULT_MODE = 0o644
DEFAULT_KEY_MODE = 0o600
BACKUP_MARKER = ".certctl-bak."
_TEMP_SUFFIX = ".certctl-tmp"
_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(-----END \1-----|\Z)", re.DOTALL)
_TAIL_LINES = 12
_TAIL_CHARS = 1500


class StartTls(enum.StrEnum):
    """Plain-text protocols whose TLS starts after a STARTTLS exchange (mail servers)."""

    SMTP = "smtp"
    IMAP = "imap"
    POP3 = "pop3"


class ManagedFile(msgspec.Struct, frozen=True):
    """One file to put in place. ``mode``/``owner``/``group`` override what the file has now.

    ``owner`` and ``group`` are names or numeric ids as strings.
    """

    path: str
    content: bytes
    mode: int | None = None
    owner: str | None = None
    group: str | None = None

    def __repr__(self) -> str:
        # The content is often a private key: describe it, never print it.
        digest = hashlib.sha256(self.content).hexdigest()[:12]
        return (
            f"ManagedFile(path={self.path!r}, content=<{len(self.content)} bytes sha256:{digest}>,"
            f" mode={self.mode if self.mode is None else oct(self.mode)}, owner={self.owner!r},"
            f" group={self.group!r})"
        )


class TlsCheck(msgspec.Struct, frozen=True):
    """After the reload, connect to ``host:port`` and expect this certificate.

    The peer's leaf is compared by SHA-256 of its DER encoding (hex, colons and case ignored);
    the chain is not verified, since the point is "is the new certificate served", not trust.
    ``server_name`` is sent as SNI (default: ``host``). A reload finishes asynchronously, so up
    to ``attempts`` connections are made, ``delay`` seconds apart, each bounded by ``timeout``.
    """

    host: str
    port: int
    server_name: str | None
    expected_fingerprint_sha256: str
    timeout: float = 10.0
    attempts: int = 5
    delay: float = 1.0
    starttls: StartTls | None = None


class DeployPlan(msgspec.Struct, frozen=True):
    """What a target wants on disk and how to make the server use it.

    ``backup_retention`` is how many backups of each file survive a successful deployment
    (None keeps all); ``lock_timeout`` bounds the wait for another deployment to the same
    directories.
    """

    files: tuple[ManagedFile, ...]
    validate_command: tuple[str, ...] | None = None
    reload_command: tuple[str, ...] | None = None
    tls_check: TlsCheck | None = None
    backup_dir: str | None = None
    command_timeout: float = 30.0
    backup_retention: int | None = 3
    lock_timeout: float = 60.0


class DeployOutcome(msgspec.Struct, frozen=True):
    """What :func:`apply_plan` did; ``written`` and ``backups`` are absolute paths."""

    changed: bool
    written: tuple[str, ...]
    backups: tuple[str, ...]
    verified_serial: str | None
    message: str


def join_pem(*parts: str) -> bytes:
    """Concatenate PEM texts (certificate, chain, key) with exactly one newline between them."""
    return "".join(p.strip() + "\n" for p in parts if p.strip()).encode("ascii")


# --------------------------------------------------------------------------------------------
# Plan checks and file state
# --------------------------------------------------------------------------------------------


class _Snapshot(msgspec.Struct, frozen=True):
    """A destination as it was before the deployment (None in its place: it did not exist)."""

    content: bytes
    mode: int
    uid: int
    gid: int


class _Item(msgspec.Struct, frozen=True):
    """A planned file with its resolved destination and the metadata to give it."""

    path: str
    content: bytes
    mode: int | None
    uid: int | None
    gid: int | None
    explicit_owner: bool


class _StepError(Exception):
    """A step of the deployment failed; ``str()`` is the operator-facing description."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step} failed: {detail}")
        self.step = step


def _check_plan(plan: DeployPlan) -> None:
    if not plan.files:
        raise ConfigurationError("the deployment plan has no files")
    for f in plan.files:
        if not f.path or not Path(f.path).is_absolute():
            raise ConfigurationError(f"deployment paths must be absolute, got {f.path!r}")
        if f.mode is not None and not 0 <= f.mode <= 0o7777:
            raise ConfigurationError(f"invalid file mode {f.mode!r} for {f.path}")
    for name, cmd in (("validate", plan.validate_command), ("reload", plan.reload_command)):
        if cmd is not None and (not cmd or not cmd[0]):
            raise ConfigurationError(f"the {name} command is empty")
    if plan.backup_dir is not None and not Path(plan.backup_dir).is_absolute():
        raise ConfigurationError(f"backup_dir must be absolute, got {plan.backup_dir!r}")
    if plan.backup_retention is not None and plan.backup_retention < 1:
        raise ConfigurationError("backup_retention must be at least 1 (or None to keep all)")
    if plan.command_timeout <= 0 or plan.lock_timeout <= 0:
        raise ConfigurationError("timeouts must be positive")
    if plan.tls_check is not None and (
        plan.tls_check.attempts < 1 or plan.tls_check.timeout <= 0 or plan.tls_check.delay < 0
    ):
        raise ConfigurationError("the TLS check needs attempts >= 1 and a positive timeout")


def _user_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    import pwd

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ConfigurationError(f"unknown user {name!r}") from None


def _group_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigurationError(f"unknown group {name!r}") from None


def _destination(path: str) -> str:
    # Write through a symlink (certbot-style live/ → archive/) instead of replacing the link.
    p = Path(path)
    return str(p.resolve()) if p.is_symlink() else os.path.normpath(path)


def _read_snapshot(path: str) -> _Snapshot | None:
    try:
        # O_NONBLOCK: opening a FIFO someone left at the path must not hang the deployment.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)  # of what we read, not of whatever the path points to by now
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _StepError("inspect", f"{path} exists and is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        content = fh.read()
    return _Snapshot(content=content, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid)


def _resolve_items(files: Sequence[ManagedFile]) -> list[_Item]:
    items: list[_Item] = []
    seen: set[str] = set()
    for f in files:
        path = _destination(f.path)
        if path in seen:
            raise ConfigurationError(f"the plan writes {path} twice")
        seen.add(path)
        items.append(
            _Item(
                path=path,
                content=f.content,
                mode=f.mode,
                uid=_user_id(f.owner) if f.owner is not None else None,
                gid=_group_id(f.group) if f.group is not None else None,
                explicit_owner=f.owner is not None or f.group is not None,
            )
        )
    return items


def _in_place(item: _Item, snap: _Snapshot | None) -> bool:
    return (
        snap is not None
        and snap.content == item.content  # bytes equality; the SHA-256 is for the outcome
        and (item.mode is None or item.mode == snap.mode)
        and (item.uid is None or item.uid == snap.uid)
        and (item.gid is None or item.gid == snap.gid)
    )


def _final_metadata(item: _Item, snap: _Snapshot | None) -> tuple[int, int | None, int | None]:
    """Mode, uid and gid for the new file: explicit, else inherited, else defaults."""
    if item.mode is not None:
        mode = item.mode
    elif snap is not None:
        mode = snap.mode
    else:
        mode = DEFAULT_KEY_MODE if _PRIVATE_KEY.search(item.content) else DEFAULT_MODE
    uid = item.uid if item.uid is not None else (snap.uid if snap else None)
    gid = item.gid if item.gid is not None else (snap.gid if snap else None)
    return mode, uid, gid


def _set_owner(fd: int, uid: int | None, gid: int | None, *, strict: bool, path: str) -> None:
    st = os.fstat(fd)
    want_uid = uid if uid is not None and uid != st.st_uid else -1
    want_gid = gid if gid is not None and gid != st.st_gid else -1
    if want_uid == -1 and want_gid == -1:
        return
    try:
        os.fchown(fd, want_uid, want_gid)
    except PermissionError:
        if strict:
            raise _StepError("write", f"not allowed to set the owner of {path}") from None
        # Inherited ownership: a non-root agent cannot give files away; keep its own.


def _write_atomically(
    path: str, content: bytes, mode: int, uid: int | None, gid: int | None, *, strict_owner: bool
) -> None:
    """Temp file in the same directory (0600 from birth), owner, mode, fsync, rename."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            _set_owner(fh.fileno(), uid, gid, strict=strict_owner, path=path)
            os.fchmod(fh.fileno(), mode)  # after chown, which may clear set-id bits
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parent(path: str) -> str:
    return str(Path(path).parent)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _backup_path(path: str, backup_dir: str | None, stamp: str) -> str:
    p = Path(path)
    directory = p.parent if backup_dir is None else Path(backup_dir) / p.parent.relative_to("/")
    return str(directory / f"{p.name}{BACKUP_MARKER}{stamp}")


def _write_backup(path: str, snap: _Snapshot) -> None:
    # Backups hold private keys: every directory created for them is private, not just the last.
    missing = [d for d in reversed(Path(path).parents) if not d.exists()]
    for directory in missing:
        directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, snap.content)
        _set_owner(fd, snap.uid, snap.gid, strict=False, path=path)
        os.fchmod(fd, snap.mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_backups(backup: str, keep: int) -> None:
    p = Path(backup)
    prefix = p.name[: p.name.index(BACKUP_MARKER) + len(BACKUP_MARKER)]
    # The stamp sorts chronologically, so name order is age order.
    siblings = sorted(c for c in p.parent.iterdir() if c.name.startswith(prefix))
    for old in siblings[:-keep]:
        old.unlink(missing_ok=True)


def _stderr_tail(stderr: bytes, stdout: bytes) -> str:
    text = (stderr if stderr.strip() else stdout).decode("utf-8", "replace")
    text = _PEM_BLOCK.sub(lambda m: f"[{m.group(1)} redacted]", text)
    lines = [line.rstrip() for line in text.strip().splitlines()][-_TAIL_LINES:]
    tail = "\n".join(lines)
    return tail[-_TAIL_CHARS:]


# --------------------------------------------------------------------------------------------
# Locks, commands, TLS
# --------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _locked(directories: Iterable[str], wait: float) -> AsyncIterator[None]:
    """``flock`` each directory, in sorted order, polling so the event loop is never blocked."""
    import fcntl

    fds: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        for directory in sorted(directories):
            fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fds.append(fd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() >= deadline:
                        raise DeploymentError(
                            f"another deployment to {directory} was still running after "
                            f"{wait:g}s; nothing was changed",
                            rolled_back=True,
                        ) from None
                    await asyncio.sleep(0.05)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # closing the last descriptor releases the flock


async def _in_thread(fn: Callable[[], T]) -> T:
    """``asyncio.to_thread`` that, when cancelled, still waits for the thread to finish.

    The rollback must not start while a write is still running in its thread.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _run(step: str, argv: tuple[str, ...], limit: float) -> None:
    """Run ``argv``; raise :class:`_StepError` with the output's tail unless it exits 0."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise _StepError(step, f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(limit):
            stdout, stderr = await proc.communicate()
    except BaseException as exc:
        _kill_group(proc)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await proc.communicate()
        if isinstance(exc, TimeoutError):
            raise _StepError(step, f"{argv[0]} did not finish within {limit:g}s") from None
        raise
    if proc.returncode != 0:
        tail = _stderr_tail(stderr, stdout)
        detail = f"{argv[0]} exited with status {proc.returncode}"
        raise _StepError(step, f"{detail}: {tail}" if tail else detail)


async def _read_reply(reader: asyncio.StreamReader, done: re.Pattern[bytes]) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection during STARTTLS")
        if done.match(line):
            return line


async def _starttls_prelude(
    protocol: StartTls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Speak just enough of the mail protocol to reach the TLS handshake."""
    if protocol is StartTls.SMTP:
        steps = [
            (None, rb"^\d{3} "),  # any final greeting line; a 554 must fail fast, not time out
            (b"EHLO certctl.invalid\r\n", rb"^\d{3} "),
            (b"STARTTLS\r\n", rb"^\d{3} "),
        ]
        ok = rb"^220 "
    elif protocol is StartTls.IMAP:
        steps = [(None, rb"^\* "), (b"c1 STARTTLS\r\n", rb"^c1 ")]
        ok = rb"^c1 OK"
    else:
        steps = [(None, rb"^[+-]"), (b"STLS\r\n", rb"^[+-]")]
        ok = rb"^\+OK"
    line = b""
    for send, done in steps:
        if send is not None:
            writer.write(send)
            await writer.drain()
        line = await _read_reply(reader, re.compile(done))
        if send is None and not re.match(rb"^(220 |\* OK|\+OK)", line):
            raise ConnectionError(f"unexpected greeting {line[:80]!r}")
    if not re.match(ok, line):
        raise ConnectionError(f"the server refused STARTTLS: {line.strip()[:120]!r}")


async def _peer_certificate(check: TlsCheck) -> bytes:
    """The DER leaf the endpoint presents (no trust verification: we compare fingerprints)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    server_name = check.server_name or check.host
    async with asyncio.timeout(check.timeout):
        if check.starttls is None:
            _, writer = await asyncio.open_connection(
                check.host, check.port, ssl=context, server_hostname=server_name
            )
        else:
            reader, writer = await asyncio.open_connection(check.host, check.port)
            try:
                await _starttls_prelude(check.starttls, reader, writer)
                await writer.start_tls(context, server_hostname=server_name)
            except BaseException:
                writer.close()
                raise
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await writer.wait_closed()
    if not der:
        raise ConnectionError("the server presented no certificate")
    return bytes(der)


def _normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


async def _verify_tls(check: TlsCheck) -> str:
    """Retry until the endpoint serves the expected certificate; return its serial."""
    expected = _normalise_fingerprint(check.expected_fingerprint_sha256)
    where = f"{check.host}:{check.port}"
    problem = ""
    for attempt in range(1, check.attempts + 1):
        try:
            der = await _peer_certificate(check)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            problem = f"cannot complete a TLS handshake with {where}: {exc or type(exc).__name__}"
        else:
            actual = hashlib.sha256(der).hexdigest()
            if actual == expected:
                return format(x509.load_der_x509_certificate(der).serial_number, "x")
            problem = f"{where} serves certificate sha256:{actual}, expected sha256:{expected}"
        if attempt < check.attempts:
            await asyncio.sleep(check.delay)
    raise _StepError("TLS check", f"{problem} (after {check.attempts} attempts)")


# --------------------------------------------------------------------------------------------
# The deployment
# --------------------------------------------------------------------------------------------


class _Deployment:
    """The mutable record of one :func:`apply_plan` call: what was touched, for the rollback."""

    def __init__(self, plan: DeployPlan, items: list[_Item], snaps: list[_Snapshot | None]):
        self.plan = plan
        self.changes = [(i, s) for i, s in zip(items, snaps, strict=True) if not _in_place(i, s)]
        self.touched: list[tuple[_Item, _Snapshot | None]] = []
        self.backups: list[str] = []

    def backup(self, stamp: str) -> None:
        for item, snap in self.changes:
            if snap is None:
                continue
            path = _backup_path(item.path, self.plan.backup_dir, stamp)
            try:
                _write_backup(path, snap)
            except OSError as exc:
                raise _StepError("backup", f"cannot back up {item.path}: {exc.strerror}") from None
            self.backups.append(path)

    def write(self) -> None:
        for item, snap in self.changes:
            mode, uid, gid = _final_metadata(item, snap)
            self.touched.append((item, snap))  # before the write: a partial write is undone too
            try:
                _write_atomically(
                    item.path, item.content, mode, uid, gid, strict_owner=item.explicit_owner
                )
            except OSError as exc:
                raise _StepError("write", f"cannot write {item.path}: {exc.strerror}") from None
        for directory in sorted({_parent(i.path) for i, _ in self.touched}):
            _fsync_dir(directory)

    def restore(self) -> list[str]:
        """Put every touched file back; return the problems (empty when all went back)."""
        problems: list[str] = []
        for item, snap in reversed(self.touched):
            try:
                if snap is None:
                    Path(item.path).unlink(missing_ok=True)
                else:
                    _write_atomically(
                        item.path, snap.content, snap.mode, snap.uid, snap.gid, strict_owner=False
                    )
            except (OSError, _StepError) as exc:
                problems.append(f"cannot restore {item.path}: {exc}")
        for directory in sorted({_parent(i.path) for i, _ in self.touched}):
            with contextlib.suppress(OSError):
                _fsync_dir(directory)
        return problems

    def prune(self) -> None:
        keep = self.plan.backup_retention
        if keep is None:
            return
        for backup in self.backups:
            with contextlib.suppress(OSError):
                _prune_backups(backup, keep)


async def _roll_back(deployment: _Deployment, failure: str, log: Logger) -> DeploymentError:
    plan = deployment.plan
    if not deployment.touched:
        return DeploymentError(f"{failure}; no file was changed", rolled_back=True)
    problems = await _in_thread(deployment.restore)
    reloaded = ""
    if not problems and plan.reload_command is not None:
        try:
            await _run("rollback reload", plan.reload_command, plan.command_timeout)
            reloaded = " and the server reloaded"
        except _StepError as exc:
            problems.append(str(exc))
    if problems:
        log.error("deployment rollback failed: %s", "; ".join(problems))
        return DeploymentError(
            f"{failure}; ROLLBACK FAILED, operator action needed: {'; '.join(problems)}",
            rolled_back=False,
        )
    log.warning("deployment rolled back: %s", failure)
    return DeploymentError(
        f"{failure}; the previous files were restored{reloaded}", rolled_back=True
    )


PENDING_MARKER = ".certctl-activation-pending"
"""Present while files may be written but not yet validated and reloaded (see rule 2)."""


def _set_marker(marker: Path) -> None:
    with marker.open("wb") as fh:
        fh.write(b"certctl: a deployment here has not been activated yet\n")
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(str(marker.parent))


def _clear_marker(marker: Path) -> None:
    marker.unlink(missing_ok=True)
    _fsync_dir(str(marker.parent))


async def _rolled_back(
    deployment: _Deployment, failure: str, log: Logger, marker: Path
) -> DeploymentError:
    """Roll back; the marker goes only when the old state is live again."""
    error = await _roll_back(deployment, failure, log)
    if error.rolled_back:
        await _in_thread(lambda: _clear_marker(marker))
    return error


async def _reactivate(plan: DeployPlan, marker: Path, count: int, log: Logger) -> DeployOutcome:
    """Files in place from an interrupted deployment: validate, reload and check them now."""
    log.warning("files are in place but their deployment was interrupted; activating them")
    verified: str | None = None
    try:
        if plan.validate_command is not None:
            await _run("validate", plan.validate_command, plan.command_timeout)
        if plan.reload_command is not None:
            await _run("reload", plan.reload_command, plan.command_timeout)
        if plan.tls_check is not None:
            verified = await _verify_tls(plan.tls_check)
    except _StepError as exc:
        # Nothing to restore: the previous files are gone since the interrupted run.
        raise DeploymentError(
            f"{exc}; the files of an interrupted deployment are in place but not active",
            rolled_back=False,
        ) from None
    await _in_thread(lambda: _clear_marker(marker))
    return DeployOutcome(
        changed=True,
        written=(),
        backups=(),
        verified_serial=verified,
        message=f"all {count} files already in place; activated after an interrupted deployment",
    )


async def apply_plan(plan: DeployPlan, *, logger: Logger | None = None) -> DeployOutcome:
    """Deploy ``plan`` as the module docstring describes; raise DeploymentError on failure."""
    log: Logger = logger or logging.getLogger(__name__)
    _check_plan(plan)
    items = _resolve_items(plan.files)
    directories = sorted({_parent(i.path) for i in items})
    for directory in directories:
        if not await asyncio.to_thread(Path(directory).is_dir):
            raise DeploymentError(
                f"directory {directory} does not exist; no file was changed", rolled_back=True
            )

    marker = Path(directories[0]) / PENDING_MARKER
    async with _locked(directories, plan.lock_timeout):
        try:
            snaps = await _in_thread(lambda: [_read_snapshot(i.path) for i in items])
        except _StepError as exc:
            raise DeploymentError(f"{exc}; no file was changed", rolled_back=True) from None
        except OSError as exc:
            raise DeploymentError(
                f"cannot read {exc.filename}: {exc.strerror}; no file was changed",
                rolled_back=True,
            ) from None
        deployment = _Deployment(plan, items, snaps)
        interrupted = await asyncio.to_thread(marker.exists)
        if not deployment.changes and not interrupted:
            return DeployOutcome(
                changed=False,
                written=(),
                backups=(),
                verified_serial=None,
                message=f"all {len(items)} files already in place",
            )
        if not deployment.changes:
            return await _reactivate(plan, marker, len(items), log)
        await _in_thread(lambda: _set_marker(marker))

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        verified: str | None = None
        try:
            await _in_thread(lambda: deployment.backup(stamp))
            await _in_thread(deployment.write)
            if plan.validate_command is not None:
                await _run("validate", plan.validate_command, plan.command_timeout)
            if plan.reload_command is not None:
                await _run("reload", plan.reload_command, plan.command_timeout)
            if plan.tls_check is not None:
                verified = await _verify_tls(plan.tls_check)
        except _StepError as exc:
            raise await _rolled_back(deployment, str(exc), log, marker) from None
        except asyncio.CancelledError:
            await _rolled_back(deployment, "the deployment was cancelled", log, marker)
            raise
        except Exception as exc:
            failure = f"deployment failed unexpectedly: {type(exc).__name__}: {exc}"
            raise await _rolled_back(deployment, failure, log, marker) from exc

        await _in_thread(lambda: _clear_marker(marker))
        await _in_thread(deployment.prune)

    written = tuple(i.path for i, _ in deployment.changes)
    message = f"wrote {len(written)} of {len(items)} files"
    if plan.reload_command is not None:
        message += ", reloaded"
    if verified is not None:
        message += f", endpoint serves serial {verified}"
    log.info("deployment changed files: %s", message)
    return DeployOutcome(
        changed=True,
        written=written,
        backups=tuple(deployment.backups),
        verified_serial=verified,
        message=message,
    )


# --------------------------------------------------------------------------------------------
# The target base class
# --------------------------------------------------------------------------------------------


class FileTarget(Target[ConfigT], abc.ABC):
    """Base for targets that deploy by writing files and reloading a server.

    A subclass implements :meth:`plan` (pure: no I/O) and declares its capabilities, adding
    ``TargetCapability.VERIFY_TLS`` when its plans carry a :class:`TlsCheck` and
    ``TargetCapability.AGENT_KEY`` when it can deploy without the private key.
    """

    capabilities: ClassVar[frozenset[TargetCapability]] = frozenset()

    @abc.abstractmethod
    def plan(self, request: DeployRequest, private_key_pem: str | None) -> DeployPlan:
        """Describe the files and commands for ``request``.

        ``private_key_pem`` is the resolved key, or None when the key stays on an agent's host
        (only for targets declaring AGENT_KEY). Raise ConfigurationError for unusable settings.
        """

    async def deploy(self, request: DeployRequest) -> DeployResult:
        """Resolve the key, build the plan and apply it."""
        key_pem: str | None = None
        if request.private_key is not None:
            key_pem = await self.context.secrets.resolve(request.private_key)
        elif TargetCapability.AGENT_KEY not in self.capabilities:
            raise DeploymentError(
                f"{self.kind} targets need the private key, and this request has none",
                rolled_back=True,
            )
        plan = self.plan(request, key_pem)
        outcome = await apply_plan(plan, logger=self.context.logger)
        details = {"written": ", ".join(outcome.written), "backups": ", ".join(outcome.backups)}
        return DeployResult(
            changed=outcome.changed,
            message=outcome.message,
            verified_serial=outcome.verified_serial,
            details={k: v for k, v in details.items() if v},
        )
