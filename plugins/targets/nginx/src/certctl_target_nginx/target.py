"""The NGINX target: a :class:`~certctl_sdk.filedeploy.FileTarget` that only says *what* to write.

Writing, backups, ``nginx -t``, reload, the TLS check and rollback all come from the SDK's file
deployer; this module maps the configuration onto a :class:`~certctl_sdk.filedeploy.DeployPlan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import ClassVar

from certctl_sdk import CheckResult, DeployRequest, TargetCapability
from certctl_sdk.filedeploy import DeployPlan, FileTarget, ManagedFile, TlsCheck, join_pem
from certctl_target_nginx.config import NginxTargetConfig, parse_mode

__all__ = ["NginxTarget"]

_OUTPUT_LIMIT = 2000


class NginxTarget(FileTarget[NginxTargetConfig]):
    """Installs a certificate where NGINX reads it, tests the configuration and reloads."""

    kind: ClassVar[str] = "nginx"
    display_name: ClassVar[str] = "NGINX"
    description: ClassVar[str] = (
        "Writes the certificate (as a full chain) and key atomically, runs `nginx -t`, reloads, "
        "optionally proves the new certificate is served, and rolls back on any failure."
    )
    Config = NginxTargetConfig
    # VERIFY_TLS is declared for the kind; an instance without tls_host skips the check.
    # AGENT_KEY: without a private key the key file is left alone and `nginx -t` proves the
    # certificate matches the key already on the host.
    capabilities: ClassVar[frozenset[TargetCapability]] = frozenset(
        {TargetCapability.VERIFY_TLS, TargetCapability.AGENT_KEY}
    )

    def plan(self, request: DeployRequest, private_key_pem: str | None) -> DeployPlan:
        """The files NGINX needs for ``request`` and the commands that activate them."""
        config = self.config
        cert_mode = parse_mode(config.cert_mode)
        files: list[ManagedFile] = []
        if config.chain_path is None:
            # ssl_certificate wants the leaf followed by the intermediates.
            full_chain = join_pem(request.certificate_pem, *request.chain_pem)
            files.append(self._file(config.cert_path, full_chain, cert_mode))
        else:
            files.append(self._file(config.cert_path, join_pem(request.certificate_pem), cert_mode))
            files.append(self._file(config.chain_path, join_pem(*request.chain_pem), cert_mode))
        if private_key_pem is not None:
            key = join_pem(private_key_pem)
            files.append(self._file(config.key_path, key, parse_mode(config.key_mode)))
        return DeployPlan(
            files=tuple(files),
            validate_command=self.validate_command(),
            reload_command=self.reload_command(),
            tls_check=self._tls_check(request),
            backup_dir=config.backup_dir,
            backup_retention=config.backup_retention,
            command_timeout=config.command_timeout,
        )

    def validate_command(self) -> tuple[str, ...]:
        """``validate_command`` if configured, else ``nginx [-p P] [-c C] -t``."""
        return self.config.validate_command or self._nginx("-t")

    def reload_command(self) -> tuple[str, ...]:
        """``reload_command`` if configured, else ``nginx [-p P] [-c C] -s reload``."""
        return self.config.reload_command or self._nginx("-s", "reload")

    async def check(self) -> CheckResult:
        """Run the validate command against the live configuration; nothing is changed."""
        argv = self.validate_command()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # so a timeout can kill whatever the command started
            )
        except OSError as exc:
            return CheckResult(ok=False, message=f"cannot run {argv[0]}: {exc.strerror or exc}")
        try:
            async with asyncio.timeout(self.config.command_timeout):
                output, _ = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return CheckResult(
                ok=False,
                message=f"{' '.join(argv)} did not finish within {self.config.command_timeout:g} s",
            )
        text = output.decode("utf-8", "replace").strip()[-_OUTPUT_LIMIT:]
        details = {"command": " ".join(argv), "output": text}
        if process.returncode != 0:
            return CheckResult(
                ok=False,
                message=f"configuration test failed (exit {process.returncode}): {text}",
                details=details,
            )
        return CheckResult(ok=True, message="nginx configuration test passed", details=details)

    def _nginx(self, *args: str) -> tuple[str, ...]:
        argv = [self.config.nginx_binary]
        if self.config.prefix is not None:
            argv += ["-p", self.config.prefix]
        if self.config.config_file is not None:
            argv += ["-c", self.config.config_file]
        return (*argv, *args)

    def _file(self, path: str, content: bytes, mode: int | None) -> ManagedFile:
        return ManagedFile(
            path=path,
            content=content,
            mode=mode,
            owner=self.config.owner,
            group=self.config.group,
        )

    def _tls_check(self, request: DeployRequest) -> TlsCheck | None:
        if self.config.tls_host is None:
            return None
        return TlsCheck(
            host=self.config.tls_host,
            port=self.config.tls_port,
            server_name=self.config.tls_server_name or request.common_name or None,
            expected_fingerprint_sha256=request.fingerprint_sha256,
            timeout=self.config.tls_timeout,
            attempts=self.config.tls_attempts,
            delay=self.config.tls_retry_delay,
        )
