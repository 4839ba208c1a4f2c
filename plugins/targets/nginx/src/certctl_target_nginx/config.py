"""Configuration of the NGINX target."""

from __future__ import annotations

import posixpath
from typing import Annotated

from msgspec import Meta

from certctl_sdk import ConnectorConfig

__all__ = ["NginxTargetConfig", "parse_mode"]

_ABSOLUTE = r"^/"
_MODE = r"^0?[0-7]{3}$"

AbsolutePath = Annotated[str, Meta(pattern=_ABSOLUTE, min_length=2)]
FileMode = Annotated[str, Meta(pattern=_MODE, examples=["0644", "0640", "0600"])]
NonEmpty = Annotated[str, Meta(min_length=1)]
Command = Annotated[tuple[NonEmpty, ...], Meta(min_length=1)]


def parse_mode(mode: str | None) -> int | None:
    """``"0640"`` → ``0o640``; modes are strings in configuration because JSON has no octal."""
    return None if mode is None else int(mode, 8)


class NginxTargetConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where NGINX reads its certificate and key, and how to test and reload it."""

    cert_path: Annotated[
        AbsolutePath,
        Meta(
            description=(
                "Absolute path of the file ssl_certificate names. Holds the leaf followed by the "
                "chain (a full chain, which is what NGINX serves) unless chain_path is set."
            )
        ),
    ]
    key_path: Annotated[
        AbsolutePath,
        Meta(
            description=(
                "Absolute path of the file ssl_certificate_key names. Left untouched when the "
                "private key stays on this host (agent-generated keys)."
            )
        ),
    ]
    chain_path: Annotated[
        AbsolutePath | None,
        Meta(
            description=(
                "Optional separate file for the issuer chain (e.g. for ssl_trusted_certificate). "
                "When set, cert_path holds the leaf alone; NGINX then serves no intermediates "
                "unless its configuration adds them."
            )
        ),
    ] = None
    cert_mode: Annotated[
        FileMode | None,
        Meta(description='Octal mode of the certificate (and chain) file, e.g. "0644".'),
    ] = None
    key_mode: Annotated[
        FileMode | None,
        Meta(description='Octal mode of the key file, e.g. "0600" or "0640".'),
    ] = None
    owner: Annotated[
        NonEmpty | None,
        Meta(description="User to own the written files (needs root)."),
    ] = None
    group: Annotated[
        NonEmpty | None,
        Meta(description="Group to own the written files (needs root or membership)."),
    ] = None
    nginx_binary: Annotated[
        NonEmpty,
        Meta(description="The nginx executable: a name found on PATH or a path."),
    ] = "nginx"
    config_file: Annotated[
        NonEmpty | None,
        Meta(
            description="Passed as `-c` to `nginx -t` and `nginx -s reload` (default: built in).",
        ),
    ] = None
    prefix: Annotated[
        NonEmpty | None,
        Meta(
            description="Passed as `-p` to `nginx -t` and `nginx -s reload` (default: built in).",
        ),
    ] = None
    validate_command: Annotated[
        Command | None,
        Meta(
            description=(
                "Replaces `nginx -t` (argv list, run without a shell), e.g. "
                '["sudo", "nginx", "-t"]. Must exit 0 when the configuration is valid.'
            )
        ),
    ] = None
    reload_command: Annotated[
        Command | None,
        Meta(
            description=(
                "Replaces `nginx -s reload` (argv list, run without a shell), e.g. "
                '["systemctl", "reload", "nginx"].'
            )
        ),
    ] = None
    tls_host: Annotated[
        NonEmpty | None,
        Meta(
            description=(
                "Host to connect to after reloading, to prove the new certificate is served. "
                "No check runs when unset. On a mismatch the previous files are restored."
            ),
        ),
    ] = None
    tls_port: Annotated[int, Meta(ge=1, le=65535, description="Port of the TLS check.")] = 443
    tls_server_name: Annotated[
        NonEmpty | None,
        Meta(
            description="SNI name of the TLS check (default: the certificate's common name).",
        ),
    ] = None
    tls_timeout: Annotated[
        float, Meta(gt=0, le=300, description="Seconds the TLS check may take.")
    ] = 10.0
    tls_attempts: Annotated[
        int,
        Meta(
            ge=1,
            le=30,
            description="Handshakes the TLS check tries before giving up (reloads are async).",
        ),
    ] = 5
    tls_retry_delay: Annotated[
        float, Meta(ge=0, le=60, description="Seconds between TLS check attempts.")
    ] = 1.0
    backup_dir: Annotated[
        AbsolutePath | None,
        Meta(description="Directory for backups of replaced files (default: next to each file)."),
    ] = None
    backup_retention: Annotated[
        int | None,
        Meta(
            description=(
                "Backups of each file kept after a successful deployment (null keeps all)."
            )
        ),
    ] = 3
    command_timeout: Annotated[
        float,
        Meta(gt=0, le=600, description="Seconds each validate or reload command may run."),
    ] = 30.0

    def __post_init__(self) -> None:
        paths = [self.cert_path, self.key_path]
        if self.chain_path is not None:
            paths.append(self.chain_path)
        normalised = [posixpath.normpath(p) for p in paths]
        if len(set(normalised)) != len(normalised):
            raise ValueError("cert_path, key_path and chain_path must be different files")
        if self.backup_retention is not None and self.backup_retention < 1:
            raise ValueError("backup_retention must be at least 1, or null to keep every backup")
