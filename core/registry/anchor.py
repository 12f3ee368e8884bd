"""The trust anchor: HR's public key, installed where the guard's account can only read it.

If the public key that checks HR's signatures lived in the data folder, whoever can write that folder
(the guard's account) could replace it with their own and re-sign anything.  So the administrator
installs it outside: ``/etc/facegate/trust-anchor.json`` on Linux and macOS
(``/Library/Application Support/FaceGate`` on macOS), ``%ProgramData%\\FaceGate\\trust-anchor.json`` on
Windows — folders only an administrator can write.

``$FACEGATE_TRUST_DIR`` names a further folder (tests, a packaged app's own read-only config).  It can
only *add* an anchor: when the system location holds one, that one is used whatever the environment
says, because the guard controls their own environment.

Modes
-----
*anchored*: an anchor is installed; the registry must be the one it names and every signature must
verify with its key.  *unanchored*: no anchor is installed (a developer's laptop, the demo); signatures
are checked with the public key stored in the registry itself, which catches edits made without HR's
key but not an attacker who replaces the key, the accounts and the signatures together.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.errors import RegistryError

__all__ = ["ANCHOR_FILE", "TRUST_DIR_ENV", "Anchor", "find_anchor", "install_anchor", "system_trust_dir"]

TRUST_DIR_ENV = "FACEGATE_TRUST_DIR"
ANCHOR_FILE = "trust-anchor.json"


@dataclass(frozen=True)
class Anchor:
    """An installed trust anchor: which registry, and HR's public key for it."""

    path: Path
    registry_id: str
    public_key: str


def system_trust_dir() -> Path:
    """The administrator-only folder of this platform."""
    if sys.platform.startswith("win"):
        return Path(os.environ.get("ProgramData", r"C:\ProgramData")) / "FaceGate"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/FaceGate")
    return Path("/etc/facegate")


def _read(path: Path) -> Anchor:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Anchor(path, str(data["registry_id"]), str(data["public_key"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # A damaged anchor must not silently turn into "unanchored": that is what an attacker wants.
        raise RegistryError(f"The trust anchor {path} is unreadable ({exc}); ask the administrator to "
                            "reinstall it with 'facegate accounts install-anchor'.") from exc


def find_anchor() -> Anchor | None:
    """The trust anchor in force: the system one if installed, else one in ``$FACEGATE_TRUST_DIR``.

    Raises
    ------
    RegistryError
        If an anchor file exists but cannot be read.
    """
    system = system_trust_dir() / ANCHOR_FILE
    if system.exists():
        return _read(system)
    extra = os.environ.get(TRUST_DIR_ENV)
    if extra:
        path = Path(extra).expanduser() / ANCHOR_FILE
        if path.exists():
            return _read(path)
    return None


def install_anchor(registry_id: str, public_key: str, directory: Path | None = None) -> Path:
    """Write the trust anchor (readable by everyone, written atomically); returns its path.

    ``directory`` defaults to ``$FACEGATE_TRUST_DIR`` when set, else :func:`system_trust_dir`.

    Raises
    ------
    RegistryError
        If the folder cannot be written (run it as administrator).
    """
    if directory is None:
        env = os.environ.get(TRUST_DIR_ENV)
        directory = Path(env).expanduser() if env else system_trust_dir()
    path = directory / ANCHOR_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".anchor-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"format": 1, "registry_id": registry_id, "public_key": public_key}, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except PermissionError as exc:
        raise RegistryError(f"Cannot write the trust anchor in {directory}: permission denied. Run "
                            "'facegate accounts install-anchor' as administrator (sudo).") from exc
    except OSError as exc:
        raise RegistryError(f"Cannot write the trust anchor in {directory} ({exc}).") from exc
    return path
