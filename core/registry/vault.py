"""Encrypted backups: only an HR or admin account can make one, and only they can restore it.

A backup holds every photo and embedding, so it is encrypted with the backup key derived from HR's
master secret (:func:`core.registry.keys.backup_key`), which only a logged-in HR or admin account can
unwrap.  The guard's account can copy the file but not read it.

File format
-----------
``FACEGATE-BACKUP\\0`` (16 bytes), a 4-byte big-endian header length, the header (JSON: format,
registry id, time, chunk size, a random 8-byte nonce prefix), then chunks of at most 4 MiB of the SQLite
backup, each a 4-byte length and its AES-256-GCM ciphertext.  A chunk's nonce is the prefix and its
4-byte number; its associated data the header, its number and whether it is the last, so chunks cannot
be reordered, dropped or the file cut short without the restore noticing.

The plain SQLite copy exists only briefly, inside the data folder (0600), and is removed afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import PermissionDenied, RegistryError
from core.registry.keys import HRSession
from core.registry.signing import registry_id
from core.registry.sql import _iso

if TYPE_CHECKING:
    from core.registry import Registry

__all__ = ["MAGIC", "is_encrypted_backup", "make_encrypted_backup", "restore_encrypted_backup"]

MAGIC = b"FACEGATE-BACKUP\x00"
CHUNK = 4 * 1024 * 1024
_MAX_HEADER = 64 * 1024


def is_encrypted_backup(path: Path) -> bool:
    """Whether ``path`` starts like an encrypted FaceGate backup."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">I?", index, last)


def _encrypt(plain: Path, dest: Path, key: bytes, header_fields: dict[str, Any]) -> None:
    prefix = secrets.token_bytes(8)
    header = json.dumps({**header_fields, "format": 1, "chunk": CHUNK,
                         "nonce_prefix": base64.b64encode(prefix).decode("ascii")}, sort_keys=True).encode("utf-8")
    aead = AESGCM(key)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    size = plain.stat().st_size
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out, open(plain, "rb") as src:
            out.write(MAGIC + struct.pack(">I", len(header)) + header)
            index, done = 0, 0
            while True:
                block = src.read(CHUNK)
                done += len(block)
                last = done >= size
                sealed = aead.encrypt(prefix + struct.pack(">I", index), block, _aad(header, index, last))
                out.write(struct.pack(">I", len(sealed)) + sealed)
                index += 1
                if last:
                    break
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _decrypt(src: Path, plain: Path, key: bytes) -> dict[str, Any]:
    aead = AESGCM(key)
    damaged = RegistryError(f"{src} is damaged or was altered (its encryption check failed); nothing was restored.")
    fd = os.open(plain, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise RegistryError(f"{src} is not an encrypted FaceGate backup.")
        (length,) = struct.unpack(">I", fh.read(4))
        if length > _MAX_HEADER:
            raise damaged
        header = fh.read(length)
        try:
            fields = json.loads(header)
            prefix = base64.b64decode(fields["nonce_prefix"], validate=True)
        except (ValueError, KeyError, TypeError) as exc:
            raise damaged from exc
        index = 0
        while True:
            raw = fh.read(4)
            if len(raw) < 4:
                raise damaged  # cut short: the last chunk never came
            (n,) = struct.unpack(">I", raw)
            if n > CHUNK + 16:
                raise damaged
            sealed = fh.read(n)
            nonce = prefix + struct.pack(">I", index)
            try:
                block = aead.decrypt(nonce, sealed, _aad(header, index, False))
                last = False
            except InvalidTag:
                try:
                    block = aead.decrypt(nonce, sealed, _aad(header, index, True))
                    last = True
                except InvalidTag as exc:
                    raise damaged from exc
            out.write(block)
            index += 1
            if last:
                if fh.read(1):
                    raise damaged  # something appended after the last chunk
                break
        out.flush()
        os.fsync(out.fileno())
    return dict(fields)


def make_encrypted_backup(registry: Registry, session: HRSession, dest: Path | str, *, overwrite: bool = False) -> Path:
    """Back up the registry to ``dest``, encrypted with HR's backup key.  Audited (``backup``).

    Raises
    ------
    RegistryError
        If ``dest`` exists (and not ``overwrite``), is the live database, or the copy fails its check.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and dest.resolve() == registry.path.resolve():
        raise RegistryError(f"{dest} is the live database; back it up to another file.")
    if dest.exists() and not overwrite:
        raise RegistryError(f"{dest} already exists; choose another name or allow overwriting.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    plain = registry.path.with_name(f".backup-{secrets.token_hex(6)}.db")
    try:
        registry._copy_to(plain)
        _encrypt(plain, dest, session.backup_key(),
                 {"registry_id": registry_id(registry), "created": _iso(), "by": session.actor})
    finally:
        plain.unlink(missing_ok=True)
    with registry.transaction():
        registry._append_audit(session.actor, "backup", str(dest), None,
                               {"bytes": dest.stat().st_size, "encrypted": True})
    return dest


def restore_encrypted_backup(registry: Registry, session: HRSession, src: Path | str) -> Path:
    """Decrypt ``src`` with HR's backup key and restore it (:meth:`Registry.restore`); returns where the
    previous content was kept.

    Raises
    ------
    PermissionDenied
        If the backup was made with another HR key (another registry, or keys replaced since).
    RegistryError
        If it is damaged, altered or cut short (nothing is restored).
    """
    src = Path(src).expanduser()
    if not src.is_file():
        raise RegistryError(f"There is no backup file {src}.")
    plain = registry.path.with_name(f".restore-{secrets.token_hex(6)}.db")
    try:
        try:
            fields = _decrypt(src, plain, session.backup_key())
        except RegistryError as exc:
            if "altered" in str(exc):
                raise PermissionDenied(f"{src} cannot be decrypted with HR's key for this registry: it is damaged, or "
                                       "it was made by another registry's HR; nothing was restored.") from exc
            raise
        if fields.get("registry_id") not in (None, registry_id(registry)):
            raise RegistryError(f"{src} is a backup of another registry ({fields.get('registry_id')}); nothing was "
                                "restored.")
        return registry.restore(plain, actor=session.actor)
    finally:
        with contextlib.suppress(OSError):
            plain.unlink(missing_ok=True)
