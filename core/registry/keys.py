"""HR's keys: one random master secret, wrapped once per account, from which the signing and backup keys derive.

Why a master secret
-------------------
Everything that decides who is let in is signed by HR with one Ed25519 key (:mod:`.signing`), and
backups are encrypted with one AES-256-GCM key (:mod:`.backup`).  Both are derived (HKDF-SHA256) from a
32-byte *master secret* that is never stored in clear: each HR or admin account stores it encrypted
(AES-256-GCM) under a key derived from that account's passphrase with scrypt.  A passphrase change
re-wraps the master secret for that account only; nothing has to be re-signed.  The guard's account can
read the wrapped records but, lacking every passphrase, can neither sign nor decrypt a backup.

The account's name, role and the registry's id are the AES-GCM associated data: a wrapped record copied
onto another account, or an ``hr`` account whose role is changed to ``admin`` by SQL, no longer unwraps.

scrypt parameters read back from the database are bounded (:data:`MAX_SCRYPT_MEMORY`), so a tampered
record cannot make a login allocate gigabytes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import unicodedata
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "MASTER_BYTES", "MAX_SCRYPT_MEMORY", "HRSession", "RecordError", "backup_key", "fingerprint", "new_master", "public_key_from_text",
    "public_key_text", "signing_key", "unwrap_master", "wrap_master",
]

MASTER_BYTES = 32
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_SCRYPT_MEMORY = 128 * 1024 * 1024
"""A stored record asking scrypt for more memory than this (128 × n × r × p bytes) is refused: 128 MiB,
four times what FaceGate writes."""
_MAX_N, _MAX_R, _MAX_P = 2**17, 16, 4


def _normalise(passphrase: str) -> bytes:
    # The same passphrase typed on different keyboards and systems may arrive in different Unicode forms.
    return unicodedata.normalize("NFKC", passphrase).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    return base64.b64decode(str(text), validate=True)


def _hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def new_master() -> bytes:
    """A fresh random master secret."""
    return secrets.token_bytes(MASTER_BYTES)


def signing_key(master: bytes) -> Ed25519PrivateKey:
    """HR's Ed25519 signing key, derived from the master secret."""
    return Ed25519PrivateKey.from_private_bytes(_hkdf(master, b"facegate/state-signing/ed25519/v1"))


def backup_key(master: bytes) -> bytes:
    """The AES-256-GCM key of encrypted backups, derived from the master secret."""
    return _hkdf(master, b"facegate/backup/aes-256-gcm/v1")


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (what the registry and the trust anchor store)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse :func:`public_key_text`; ``ValueError`` if it is not a 32-byte Ed25519 key."""
    raw = _unb64(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(public_text: str) -> str:
    """A short, readable fingerprint of a public key, for an administrator to compare by eye."""
    digest = hashlib.sha256(public_text.encode("ascii")).hexdigest()[:24]
    return ":".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(_normalise(passphrase), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=MAX_SCRYPT_MEMORY + (1 << 20))


def wrap_master(master: bytes, passphrase: str, aad: bytes) -> dict[str, Any]:
    """The storable record of ``master`` encrypted under ``passphrase`` (scrypt + AES-256-GCM)."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    kek = _kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(kek).encrypt(nonce, master, aad)
    return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt),
            "cipher": "aes-256-gcm", "nonce": _b64(nonce), "sealed": _b64(sealed)}


class RecordError(ValueError):
    """A stored key record is unreadable or asks for out-of-range parameters."""


def unwrap_master(record: Any, passphrase: str, aad: bytes) -> bytes | None:
    """The master secret in ``record``, or ``None`` if ``passphrase`` (or the associated data) is wrong.

    Raises
    ------
    RecordError
        If the record is damaged or its scrypt parameters are outside the bounds.
    """
    try:
        if record.get("kdf") != "scrypt" or record.get("cipher") != "aes-256-gcm":
            raise RecordError("unknown key-derivation or cipher")
        n, r, p = int(record["n"]), int(record["r"]), int(record["p"])
        salt, nonce, sealed = _unb64(record["salt"]), _unb64(record["nonce"]), _unb64(record["sealed"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"the account's key record is unreadable ({exc})") from exc
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P
            and 128 * n * r * p <= MAX_SCRYPT_MEMORY and len(salt) >= 16 and len(nonce) == 12):
        raise RecordError("the account's key record asks for out-of-range scrypt parameters")
    try:
        master = AESGCM(_kek(passphrase, salt, n, r, p)).decrypt(nonce, sealed, aad)
    except InvalidTag:
        return None
    return master if len(master) == MASTER_BYTES else None


class HRSession:
    """An HR or admin account that has logged in: its name, role and the unwrapped master secret.

    Made by :func:`core.registry.accounts.login`; hold it only as long as the action needs it.  The
    secret is not shown by ``repr``.
    """

    __slots__ = ("_master", "name", "registry_id", "role")

    def __init__(self, name: str, role: str, master: bytes, registry_id: str) -> None:
        self.name = name
        self.role = role
        self.registry_id = registry_id
        self._master = master

    def __repr__(self) -> str:
        return f"HRSession({self.name!r}, role={self.role!r})"

    @property
    def actor(self) -> str:
        """Who did it, for the audit trail: ``"hr:alice"``, ``"admin:bob"``."""
        return f"{self.role}:{self.name}"

    def signing_key(self) -> Ed25519PrivateKey:
        """HR's signing key."""
        return signing_key(self._master)

    def backup_key(self) -> bytes:
        """The backup encryption key."""
        return backup_key(self._master)

    def wrap_for(self, passphrase: str, aad: bytes) -> dict[str, Any]:
        """The master secret wrapped under another passphrase (a new account, a passphrase change)."""
        return wrap_master(self._master, passphrase, aad)
