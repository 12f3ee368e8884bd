"""Roles: the HR passphrase.

A guard can only read; HR actions (enroll, erase, change thresholds, activate or roll back a model)
need the HR passphrase.  Only its scrypt hash is stored, in the registry's ``security.hr_passphrase``
setting, with its random salt and cost parameters, so they can be raised later without breaking old
hashes.  It is set on first use; changing it needs the current one.  Setting and changing it is
audited (without the hash); so is every refused attempt.

Typical use in a command that changes something (the CLI passes terminal prompts, a GUI passes
dialogs)::

    actor = authorize_hr(registry, passphrase_from_env_or_prompt, action="remove operator E1001",
                         actor="hr:alice", new_passphrase_provider=ask_new_passphrase)
    registry.remove_operator("E1001", actor=actor)

For scripts and automation the passphrase comes from ``FACEGATE_HR_PASSPHRASE``; otherwise it is
asked on the terminal, and with no terminal to ask the command fails at once instead of waiting.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import logging
import os
import secrets
import sys
import unicodedata
from collections.abc import Callable
from typing import Any

from core.errors import PermissionDenied, WeakPassphrase
from core.registry import Registry

log = logging.getLogger(__name__)

PASSPHRASE_SETTING = "security.hr_passphrase"
"""Registry setting that holds the scrypt record."""
PASSPHRASE_ENV = "FACEGATE_HR_PASSPHRASE"
"""Environment variable read by :func:`passphrase_from_env_or_prompt`."""
MIN_LENGTH = 8
"""Shortest passphrase accepted when setting one."""
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
# Upper bounds on parameters read back from the database, so a tampered record cannot make a
# check allocate gigabytes or spin for minutes.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


PassphraseProvider = Callable[[], str]
"""Asks for a passphrase when called (a terminal prompt, a GUI dialog); raises to cancel."""

__all__ = [
    "MIN_LENGTH",
    "PASSPHRASE_ENV",
    "PASSPHRASE_SETTING",
    "PassphraseProvider",
    "PermissionDenied",
    "WeakPassphrase",
    "authorize_hr",
    "check_passphrase",
    "has_passphrase",
    "hash_passphrase",
    "passphrase_from_env_or_prompt",
    "require_hr",
    "set_passphrase",
]


def _normalise(passphrase: str) -> bytes:
    # The same passphrase typed on different keyboards/OSes may arrive in different Unicode forms.
    return unicodedata.normalize("NFKC", passphrase).encode("utf-8")


def _scrypt(passphrase: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(_normalise(passphrase), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r + (1 << 20))


def hash_passphrase(passphrase: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> dict[str, Any]:
    """Return the storable scrypt record of a passphrase (algorithm, parameters, salt, hash)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(passphrase, salt, n, r, p, SCRYPT_DKLEN)
    return {"algorithm": "scrypt", "n": n, "r": r, "p": p, "dklen": SCRYPT_DKLEN,
            "salt": base64.b64encode(salt).decode("ascii"), "hash": base64.b64encode(digest).decode("ascii")}


def _matches(record: Any, passphrase: str) -> bool:
    try:
        if record.get("algorithm") != "scrypt":
            return False
        n, r, p, dklen = int(record["n"]), int(record["r"]), int(record["p"]), int(record["dklen"])
        if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P
                and 16 <= dklen <= 64):
            log.warning("the stored HR passphrase record has out-of-range parameters; refusing it")
            return False
        salt = base64.b64decode(record["salt"], validate=True)
        expected = base64.b64decode(record["hash"], validate=True)
    except (AttributeError, KeyError, TypeError, ValueError):
        log.warning("the stored HR passphrase record is unreadable; refusing it")
        return False
    return hmac.compare_digest(_scrypt(passphrase, salt, n, r, p, dklen), expected)


def has_passphrase(registry: Registry) -> bool:
    """Whether an HR passphrase has been set in this registry."""
    return registry.get_setting(PASSPHRASE_SETTING) is not None


def check_passphrase(registry: Registry, passphrase: str | None) -> bool:
    """Whether ``passphrase`` is the HR passphrase (constant-time compare).  False if none is set."""
    if passphrase is None:
        return False
    record = registry.get_setting(PASSPHRASE_SETTING)
    return record is not None and _matches(record, passphrase)


def set_passphrase(registry: Registry, passphrase: str, old: str | None = None, *, actor: str = "hr") -> None:
    """Set the HR passphrase: on first use freely, afterwards only with the current one (``old``).

    Audited as ``set_setting`` of ``security.hr_passphrase`` with the values hidden.

    Raises
    ------
    PermissionDenied
        If a passphrase is already set and ``old`` is missing or wrong.
    WeakPassphrase
        If the new passphrase is shorter than :data:`MIN_LENGTH` characters.
    """
    if len(passphrase.strip()) < MIN_LENGTH:
        raise WeakPassphrase(f"The HR passphrase must have at least {MIN_LENGTH} characters.")
    record = hash_passphrase(passphrase)  # slow on purpose: computed before taking the write lock
    with registry.transaction():  # check-and-set is atomic: two "first uses" cannot both win
        current = registry.get_setting(PASSPHRASE_SETTING)
        denied = current is not None and (old is None or not _matches(current, old))
        if not denied:
            registry.set_setting(PASSPHRASE_SETTING, record, actor=actor, secret=True)
    if denied:
        registry.audit(actor, "hr_denied", "set passphrase", None, None)
        raise PermissionDenied("An HR passphrase is already set; give the current one to change it.")


def require_hr(registry: Registry, passphrase: str | None, *, action: str = "this action",
               actor: str = "hr") -> None:
    """Raise :class:`PermissionDenied` unless ``passphrase`` is the HR passphrase.

    A refused attempt is audited as ``hr_denied`` with the action it was for.  Call it before
    opening a :meth:`~core.registry.Registry.transaction`, so that this audit row is not rolled back
    with the refused action.

    Raises
    ------
    PermissionDenied
        If no passphrase has been set yet (set one first with :func:`set_passphrase`), or the given
        one is missing or wrong.
    """
    if not has_passphrase(registry):
        raise PermissionDenied(f"This action needs the HR passphrase ({action}), and none has been set "
                               "yet: set one first.")
    if not check_passphrase(registry, passphrase):
        # Failed attempts are part of the record (someone is guessing, or a clerk needs help).
        registry.audit(actor, "hr_denied", action, None, None)
        raise PermissionDenied(f"This action needs the HR passphrase ({action}); the passphrase given "
                               "is wrong.")


def authorize_hr(registry: Registry, passphrase_provider: PassphraseProvider, *, action: str, actor: str,
                 new_passphrase_provider: PassphraseProvider | None = None) -> str:
    """Authorise one HR action: check the HR passphrase, or set it if this is its first use.

    The one place the CLI and the GUI decide whether an HR action may go ahead.  Call it before
    opening a :meth:`~core.registry.Registry.transaction`, so that the audit row of a refusal is not
    rolled back with the refused action.

    Parameters
    ----------
    registry
        The open registry.
    passphrase_provider
        Called (only when a passphrase is set) to ask for the HR passphrase, e.g.
        :func:`passphrase_from_env_or_prompt` or a dialog.
    action
        What is being authorised, in words (``"erase E1001"``); recorded with a refusal.
    actor
        Who asks (``"hr:alice"``); recorded in the audit trail, and returned.
    new_passphrase_provider
        Called instead when no HR passphrase has been set yet: what it returns becomes the HR
        passphrase (it should ask twice).  Without it, a first use is refused.

    Returns
    -------
    str
        ``actor``, to pass on as the ``actor`` of the authorised change.

    Raises
    ------
    PermissionDenied
        If the passphrase is wrong or missing (audited as ``hr_denied`` with ``action``), if none is
        set and there is no ``new_passphrase_provider``, or if another HR user set one first
        (audited too).  Also whatever the providers raise to cancel.
    WeakPassphrase
        If the new passphrase is too short (nothing is set).
    """
    if has_passphrase(registry):
        require_hr(registry, passphrase_provider(), action=action, actor=actor)
    elif new_passphrase_provider is not None:
        set_passphrase(registry, new_passphrase_provider(), actor=actor)
    else:
        require_hr(registry, None, action=action, actor=actor)  # refuses: none has been set yet
    return actor


def passphrase_from_env_or_prompt(prompt: str = "HR passphrase: ", *, confirm: bool = False,
                                  env_var: str = PASSPHRASE_ENV) -> str:
    """Get the HR passphrase for a command: from ``$FACEGATE_HR_PASSPHRASE``, else from the terminal.

    Parameters
    ----------
    prompt
        Shown when asking on the terminal.
    confirm
        Ask twice and compare (for setting a new passphrase).
    env_var
        Environment variable to read first.

    Raises
    ------
    PermissionDenied
        If the variable is unset and standard input is not a terminal (a script, a service, a
        pipe): failing at once beats waiting forever for an answer nobody can give.
    WeakPassphrase
        If ``confirm`` and the two entries differ.
    """
    value = os.environ.get(env_var)
    if value:
        return value
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        raise PermissionDenied(f"This action needs the HR passphrase, and there is no terminal to ask for "
                               f"it: set {env_var} for scripts and automation.")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise WeakPassphrase("The two passphrases differ; nothing was changed.")
    return first
