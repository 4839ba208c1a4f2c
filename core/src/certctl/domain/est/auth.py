"""Who an EST client is: HTTP Basic, a client certificate of this profile's CAs, or nobody.

Three pieces, each with a reason to exist:

- :class:`TrustStores`: one certificate store per mTLS profile. The listener accepted the client
  certificate against the union of every profile's bundle; a handler re-verifies it against
  *its* profile's bundle, so a device of one profile's CA cannot enroll in another profile.
  Reloadable; a bad bundle keeps the previous store.
- :class:`BasicLockout`: failed Basic attempts per source address (10 an hour), in a bounded
  table so a spray of addresses cannot grow memory without limit.
- :func:`authenticate`: the per-route decision (plain or mTLS route, profile's modes).

The Basic password is compared by Argon2id verification of the hash made at start (the breakglass
hasher runs it in a bounded worker pool); the user name, when one is configured, with
``hmac.compare_digest``. Neither is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certctl.domain.breakglass.hashing import Argon2
from certctl.domain.est.settings import (
    EstProfileSettings,
    EstSettings,
    load_trust_bundle,
    password_hasher,
)
from certctl.domain.est.wire import EstError
from certctl.lib.peer_tls import PeerTLS
from certctl.lib.ratelimit_http import address_key

__all__ = [
    "REALM",
    "BasicLockout",
    "EstAuthenticator",
    "Principal",
    "Route",
    "TrustStores",
]

_log = logging.getLogger("certctl.est")

REALM = 'Basic realm="est"'
Route = Literal["plain", "mtls"]
LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW_SECONDS = 3600.0
LOCKOUT_MAX_ADDRESSES = 50_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated EST client; ``name`` is what audit rows and rate limits key on."""

    name: str
    method: Literal["basic", "mtls", "anonymous"]
    client_certificate: x509.Certificate | None = None


@dataclass(frozen=True, slots=True)
class _Trust:
    store: Store
    anchors: tuple[x509.Certificate, ...]
    loaded_at: datetime


class TrustStores:
    """The client-CA store of every mTLS profile, by label."""

    def __init__(self, settings: EstSettings) -> None:
        self._profiles = [p for p in settings.profiles if settings.enabled and p.mtls_enabled]
        self._trust: dict[str, _Trust] = {}
        errors = self.reload()
        if errors:  # the settings parser read these files a moment ago
            raise ValueError("; ".join(f"{k}: {v}" for k, v in errors.items()))

    @staticmethod
    def _load(path: Path) -> _Trust:
        anchors = tuple(x509.load_der_x509_certificate(d) for d in load_trust_bundle(path))
        return _Trust(Store(list(anchors)), anchors, datetime.now(UTC))

    def reload(self) -> dict[str, str]:
        """Re-read every bundle; returns the errors by label (those keep their old store)."""
        errors: dict[str, str] = {}
        for profile in self._profiles:
            try:
                self._trust[profile.label] = self._load(Path(profile.trust_bundle_path))
            except ValueError as exc:
                errors[profile.label] = str(exc)
                _log.error("EST profile %s: trust bundle not reloaded: %s", profile.label, exc)
        return errors

    def anchors(self, label: str) -> tuple[x509.Certificate, ...]:
        """The CA certificates ``label`` trusts now."""
        trust = self._trust.get(label)
        return trust.anchors if trust else ()

    def loaded_at(self, label: str) -> datetime | None:
        """When ``label``'s bundle was last read successfully."""
        trust = self._trust.get(label)
        return trust.loaded_at if trust else None

    def verify(self, label: str, der: bytes) -> x509.Certificate:
        """The client certificate, verified against ``label``'s CAs now; EstError 403 if not."""
        trust = self._trust.get(label)
        if trust is None:
            raise EstError(403, "this profile accepts no client certificates")
        try:
            leaf = x509.load_der_x509_certificate(der)
        except ValueError:
            raise EstError(403, "the client certificate cannot be read") from None
        verifier = (
            PolicyBuilder().store(trust.store).time(datetime.now(UTC)).build_client_verifier()
        )
        try:
            verifier.verify(leaf, [])
        except VerificationError as exc:
            raise EstError(
                403, f"the client certificate is not trusted by this profile: {exc}"
            ) from None
        return leaf


class BasicLockout:
    """Failed Basic attempts per source address: at most ``failures`` per ``window`` seconds."""

    def __init__(
        self,
        *,
        failures: int = LOCKOUT_FAILURES,
        window: float = LOCKOUT_WINDOW_SECONDS,
        max_addresses: int = LOCKOUT_MAX_ADDRESSES,
    ) -> None:
        self.failures = failures
        self.window = window
        self.max_addresses = max_addresses
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._seen.get(address)
        if times is None:
            return deque(maxlen=self.failures)
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` (an IPv6 one by its /64) may try again; 0 when it may."""
        address = address_key(address)
        now = time.monotonic()
        times = self._recent(address, now)
        if len(times) < self.failures:
            return 0
        return max(1, int(times[0] + self.window - now) + 1)

    def failed(self, address: str) -> None:
        """Count one failure of ``address``."""
        address = address_key(address)
        now = time.monotonic()
        times = self._recent(address, now)
        times.append(now)
        self._seen[address] = times
        self._seen.move_to_end(address)
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)  # the least recently failing address is forgotten


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class EstAuthenticator:
    """Decides who the client of one EST request is, or refuses it."""

    def __init__(self, settings: EstSettings, *, hash_concurrency: int = 2) -> None:
        self.trust = TrustStores(settings)
        self.lockout = BasicLockout()
        self._argon2 = Argon2(
            memory_kib=password_hasher().memory_cost,
            time_cost=password_hasher().time_cost,
            parallelism=1,
            concurrency=hash_concurrency,
        )

    async def _basic(
        self, profile: EstProfileSettings, authorization: str, address: str
    ) -> Principal:
        wait = self.lockout.retry_after(address)
        if wait:
            raise EstError(
                429,
                "too many failed enrollment passwords from this address; try again later",
                {"Retry-After": str(wait)},
            )
        credentials = _basic_credentials(authorization)
        if credentials is None:
            raise EstError(401, "HTTP Basic credentials are required", {"WWW-Authenticate": REALM})
        user, password = credentials
        user_ok = not profile.username or hmac.compare_digest(
            user.encode(), profile.username.encode()
        )
        password_ok = await self._argon2.verify_or_dummy(profile.password_hash or None, password)
        if not (user_ok and password_ok):
            self.lockout.failed(address)
            raise EstError(401, "the enrollment credentials are wrong", {"WWW-Authenticate": REALM})
        return Principal(name=f"basic:{user or '-'}", method="basic")

    def _certificate(self, profile: EstProfileSettings, peer: PeerTLS | None) -> x509.Certificate:
        if peer is None or peer.client_certificate is None:
            raise EstError(403, "the mTLS route needs a client certificate")
        return self.trust.verify(profile.label, peer.client_certificate)

    async def authenticate(
        self,
        profile: EstProfileSettings,
        route: Route,
        *,
        authorization: str,
        address: str,
        peer: PeerTLS | None,
        enrollment: bool,
    ) -> Principal:
        """The principal of a request, by the profile's modes and the route it came on.

        ``enrollment`` False (cacerts, csrattrs): the plain route is open to anyone (RFC 7030
        §4.1.1 serves the CA certificates without authentication); the mTLS route still
        requires a certificate of this profile, as its name promises.
        """
        if route == "mtls":
            cert = self._certificate(profile, peer)
            name = f"mtls:{cert.subject.rfc4514_string()[:200]}"
            if enrollment and "basic" in profile.auth_modes and "mtls" not in profile.auth_modes:
                basic = await self._basic(profile, authorization, address)
                return Principal(name=basic.name, method="basic", client_certificate=cert)
            return Principal(name=name, method="mtls", client_certificate=cert)
        if not enrollment or profile.anonymous:
            return Principal(name=f"address:{address}", method="anonymous")
        if "basic" in profile.auth_modes:
            return await self._basic(profile, authorization, address)
        raise EstError(
            403,
            f"this profile enrolls with a client certificate only, at "
            f"/.well-known/est-mtls/{profile.label}/",
        )
