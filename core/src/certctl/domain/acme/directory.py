"""Which profile an ACME request is for, and the URLs of its resources.

Two layouts serve the same handlers: ``/acme/profile/{profile_id}/…`` (canonical) and the
shorthand ``/acme/…`` for ``CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID``. Every URL a response
names is built from ``CERTCTL_SERVER_PUBLIC_URL`` (never from the request's Host header) under
the layout the request used, so the JWS ``url`` a client signs is compared with what certctl
itself advertised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.models import CertificateProfile
from certctl.domain.acme.problems import AcmeProblem
from certctl.settings import Settings

__all__ = ["Directory", "auth_mode", "eab_required", "resolve_directory"]


@dataclass(frozen=True, slots=True)
class Directory:
    """One profile's ACME directory as reached by one request."""

    profile: CertificateProfile
    base: str
    """``https://host/acme/profile/<id>`` or ``https://host/acme``."""

    def url(self, *parts: str) -> str:
        """An absolute URL below the directory, e.g. ``url("order", order_id)``."""
        return "/".join((self.base, *parts))

    def account_url(self, account_id: str) -> str:
        return self.url("account", account_id)

    def account_id_of(self, kid: str) -> str | None:
        """The account id a JWS ``kid`` names, if it is one of this directory's account URLs."""
        prefix = self.url("account") + "/"
        if not kid.startswith(prefix):
            return None
        rest = kid[len(prefix) :]
        return rest if rest and "/" not in rest else None

    def document(self, settings: Settings) -> dict[str, Any]:
        """The directory object (RFC 8555 §7.1.1, RFC 9773 §3 ``renewalInfo``)."""
        body: dict[str, Any] = {
            "newNonce": self.url("new-nonce"),
            "newAccount": self.url("new-account"),
            "newOrder": self.url("new-order"),
            "revokeCert": self.url("revoke-cert"),
            "keyChange": self.url("key-change"),
        }
        if settings.acme_ari_enabled:
            body["renewalInfo"] = self.url("renewal-info")
        meta: dict[str, Any] = {"externalAccountRequired": eab_required(self.profile, settings)}
        if settings.acme_tos_url:
            meta["termsOfService"] = settings.acme_tos_url
        if settings.acme_website:
            meta["website"] = settings.acme_website
        if settings.acme_caa_identities:
            meta["caaIdentities"] = list(settings.acme_caa_identities)
        body["meta"] = meta
        return body


def auth_mode(profile: CertificateProfile, settings: Settings) -> str:
    """``challenge`` or ``trust_authenticated`` for this profile."""
    return profile.acme_auth_mode or settings.acme_default_auth_mode


def eab_required(profile: CertificateProfile, settings: Settings) -> bool:
    """Whether new accounts need an External Account Binding.

    ``trust_authenticated`` skips identifier validation, so only accounts an operator enrolled
    (with an EAB key) may use it: the Go certctl lets any key-holder order any name the profile
    allows in that mode.
    """
    if auth_mode(profile, settings) == "trust_authenticated":
        return True
    if profile.acme_eab_required is not None:
        return profile.acme_eab_required
    return settings.acme_eab_required


async def resolve_directory(
    session: AsyncSession, settings: Settings, profile_id: str | None
) -> Directory:
    """The directory a request path names; a problem document when there is none to serve."""
    public = settings.effective_public_url
    if not settings.acme_server_enabled:
        raise AcmeProblem("malformed", "the ACME server is disabled", status=404)
    if profile_id is None:
        if not settings.acme_default_profile_id:
            raise AcmeProblem(
                "userActionRequired",
                "no default ACME profile is configured: use /acme/profile/<profile_id>/directory",
            )
        profile_id, base = settings.acme_default_profile_id, f"{public}/acme"
    else:
        base = f"{public}/acme/profile/{profile_id}"
    profile = await session.get(CertificateProfile, profile_id)
    if profile is None:
        raise AcmeProblem("malformed", f"no ACME directory for profile {profile_id!r}", status=404)
    if not profile.enabled or profile.issuer_id is None:
        raise AcmeProblem(
            "malformed",
            f"profile {profile_id!r} is disabled or names no issuer, so it serves no ACME",
            status=404,
        )
    return Directory(profile=profile, base=base)
