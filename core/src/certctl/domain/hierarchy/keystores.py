"""Where a tree CA's private key lives: ``file`` (sealed in the database) or ``pkcs11`` (a token).

Both drivers answer the same three questions: make a key for a new CA, lend a CA's key to its
issuer, and throw away the key of a CA whose creation failed (so no key outlives a CA row that
was never written). The row keeps what the driver returns: the sealed PEM (``file``) or the
key's RFC 7512 URI, its ``key_driver_id`` (``pkcs11``, the key bytes never leave the token).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from certctl.db.models import IntermediateCa
from certctl.errors import BadRequest
from certctl.lib.encryption import SecretBox
from certctl.lib.keys import generate_key, private_key_pem
from certctl.lib.pkcs11_settings import Pkcs11Settings
from certctl.lib.pkcs11_token import KeyUri, Pkcs11Token, TokenSigner, TokenUnavailable
from certctl_sdk import CaSigner
from certctl_sdk.models import KeyType

__all__ = ["FileKeyStore", "KeyStore", "KeyStores", "NewKey", "Pkcs11KeyStore", "key_context"]

StoreName = Literal["file", "pkcs11"]


def key_context(ca_id: str) -> str:
    """Encryption context of a tree CA's private key (``file`` store)."""
    return f"intermediate-ca:{ca_id}"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key made for a CA that is not stored yet: its public half and what the row keeps."""

    public_key: PublicKeyTypes
    sealed: str | None = None
    """``file``: the PEM sealed under :func:`key_context`."""
    reference: str | None = None
    """``pkcs11``: the key's URI."""

    @property
    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()


class KeyStore(Protocol):
    """One driver."""

    name: StoreName

    async def generate(self, key_type: KeyType, ca_id: str) -> NewKey:
        """A fresh key for CA ``ca_id``."""
        ...

    async def lend(self, row: IntermediateCa) -> str | CaSigner:
        """The CA's key for its issuer: PEM (in memory only) or a signer."""
        ...

    async def discard(self, key: NewKey) -> None:
        """Forget a key whose CA was never stored."""
        ...


class FileKeyStore:
    """Keys generated in the process and sealed with the server's box (the default)."""

    name: StoreName = "file"

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    async def generate(self, key_type: KeyType, ca_id: str) -> NewKey:
        key = await asyncio.to_thread(generate_key, key_type)
        sealed = await asyncio.to_thread(
            self._box.encrypt, private_key_pem(key).encode(), key_context(ca_id)
        )
        return NewKey(public_key=key.public_key(), sealed=sealed)

    async def lend(self, row: IntermediateCa) -> str | CaSigner:
        if row.private_key_enc is None:
            raise TokenUnavailable(f"tree CA {row.id} has no sealed key")
        key = await asyncio.to_thread(self._box.decrypt, row.private_key_enc, key_context(row.id))
        return key.decode()

    async def discard(self, key: NewKey) -> None:
        """Nothing was stored outside the row that is not written."""


class Pkcs11KeyStore:
    """Keys generated inside the configured token; only their URI is stored."""

    name: StoreName = "pkcs11"

    def __init__(self, token: Pkcs11Token) -> None:
        self.token = token

    async def generate(self, key_type: KeyType, ca_id: str) -> NewKey:
        uri = await asyncio.to_thread(self.token.generate, key_type, ca_id)
        try:
            public_key = await asyncio.to_thread(self.token.public_key, uri)
        except BaseException:
            await asyncio.to_thread(self.token.destroy, uri)
            raise
        return NewKey(public_key=public_key, reference=uri)

    async def lend(self, row: IntermediateCa) -> str | CaSigner:
        if not row.key_ref:
            raise TokenUnavailable(f"tree CA {row.id} has no PKCS#11 key reference")
        uri = KeyUri(row.key_ref)
        await asyncio.to_thread(self.token.check, uri)
        public_key = x509.load_pem_x509_certificate(row.certificate_pem.encode()).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise TokenUnavailable(f"tree CA {row.id}: unsupported key type in its certificate")
        return TokenSigner(self.token, uri, public_key)

    async def discard(self, key: NewKey) -> None:
        if key.reference:
            await asyncio.to_thread(self.token.destroy, KeyUri(key.reference))


class KeyStores:
    """The drivers this server offers: ``file`` always, ``pkcs11`` when a token is configured.

    Built by the runtime; opening the token here is what makes a misconfigured token stop the
    server at start (``SettingsError``).
    """

    def __init__(self, box: SecretBox, pkcs11: Pkcs11Settings | None = None) -> None:
        self.file = FileKeyStore(box)
        self.pkcs11 = Pkcs11KeyStore(Pkcs11Token.open(pkcs11)) if pkcs11 is not None else None

    def get(self, name: str) -> KeyStore:
        """The named driver; 400 when this server has none by that name."""
        if name == "file":
            return self.file
        if name == "pkcs11":
            if self.pkcs11 is None:
                raise BadRequest(
                    "key_store pkcs11 is not configured on this server (set "
                    "CERTCTL_PKCS11_MODULE, CERTCTL_PKCS11_TOKEN_LABEL and a PIN)"
                )
            return self.pkcs11
        raise BadRequest(f"key_store {name!r} is unknown; use file or pkcs11")

    async def lend(self, row: IntermediateCa) -> str | CaSigner:
        """The key of a stored CA, from the store its row names (503 when unavailable)."""
        if row.key_store == "pkcs11" and self.pkcs11 is None:
            raise TokenUnavailable(
                f"tree CA {row.id} keeps its key in a PKCS#11 token, but none is configured "
                "(CERTCTL_PKCS11_MODULE)"
            )
        return await self.get(row.key_store).lend(row)

    def close(self) -> None:
        if self.pkcs11 is not None:
            self.pkcs11.token.close()
