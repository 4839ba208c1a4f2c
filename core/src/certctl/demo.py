"""Demo data for ``certctl serve --demo``: a Local CA, a profile (also an ACME directory), a few
certificates, and an admin key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from certctl.db.base import new_id, utcnow
from certctl.db.models import ApiKey, CertificateProfile, ConnectorInstance
from certctl.domain.auth.actor import Actor
from certctl.domain.auth.generation import bump_generation
from certctl.domain.auth.keystore import generate_api_key, hash_api_key
from certctl.domain.auth.seeding import grant_once
from certctl.domain.certificates.schemas import CertificateCreate
from certctl.domain.certificates.service import create_certificates
from certctl.domain.connectors.schemas import ConnectorCreate
from certctl.domain.profiles.schemas import ProfileIn
from certctl.domain.profiles.service import create_profile
from certctl.runtime import Runtime

__all__ = ["DemoSeed", "seed_demo"]

DEMO_ISSUER = "Demo Local CA"
DEMO_PROFILE = "demo-web"
DEMO_HOSTS = ("www.demo.internal", "api.demo.internal", "grafana.demo.internal")


@dataclass(frozen=True, slots=True)
class DemoSeed:
    api_key: str
    """A fresh admin key for this run (keys are stored hashed, so an old one cannot be shown)."""
    acme_profile_id: str | None
    """The demo profile, whose ACME directory is ``/acme/profile/<id>/directory``."""


async def seed_demo(runtime: Runtime) -> DemoSeed:
    """Seed once (idempotent); a fresh admin API key and the demo profile for this run."""
    actor = Actor.system("demo-seed")
    plaintext = generate_api_key()
    async with runtime.sessions() as session:
        session.add(
            ApiKey(
                id=new_id("ak"),
                name="demo-admin",
                key_hash=hash_api_key(plaintext),
                created_by="demo-seed",
                created_at=utcnow(),
            )
        )
        await grant_once(session, "APIKey", "demo-admin", "r-admin", "demo-seed")
        await bump_generation(session)
        existing = await session.scalar(
            select(ConnectorInstance).where(
                ConnectorInstance.family == "issuer", ConnectorInstance.name == DEMO_ISSUER
            )
        )
        if existing is None and runtime.host.registry.kinds("issuer"):
            issuer = await runtime.connectors.create(
                session,
                "issuer",
                ConnectorCreate(
                    name=DEMO_ISSUER, type="local", config={"common_name": "certctl Demo Root CA"}
                ),
            )
            profile = await create_profile(
                session,
                ProfileIn(
                    name=DEMO_PROFILE,
                    description="Demo TLS servers",
                    max_ttl_seconds=90 * 86400,
                    allowed_san_patterns=["**.demo.internal"],
                    issuer_id=issuer.id,
                    acme_auth_mode="challenge",
                ),
                actor,
            )
            await create_certificates(
                session,
                [
                    CertificateCreate(
                        common_name=host,
                        issuer_id=issuer.id,
                        profile_id=profile.id,
                        validity_days=30,
                        environment="demo",
                    )
                    for host in DEMO_HOSTS
                ],
                actor,
                default_validity_days=runtime.settings.default_validity_days,
                max_attempts=runtime.settings.job_max_attempts,
            )
        await session.commit()
        profile_id = await session.scalar(
            select(CertificateProfile.id).where(CertificateProfile.name == DEMO_PROFILE)
        )
    await runtime.worker.drain()
    return DemoSeed(api_key=plaintext, acme_profile_id=profile_id)
