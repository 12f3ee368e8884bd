"""Authorising HR actions: an HR login, then the change, then HR's signature over the new state.

Every change to what decides who is let in — enrollment, erasure, deactivation, training, activating
or rolling back a model, the decision settings, the accounts — goes through here, from the CLI and
from the console alike::

    session = authorize_hr(registry, credentials_from_env_or_prompt, action="erase E1001")
    with signed(registry, session, reason="erase E1001"):
        registry.remove_operator("E1001", actor=session.actor)

:func:`authorize_hr` logs an account in (:func:`core.registry.accounts.login`: delay, lockout and
refusals audited); :func:`signed` signs the registry's state when the block ends
(:func:`core.registry.signing.sign_state`) — also when it ends with an error part-way, because what
was changed is still HR's own doing and must not be left unsigned.

For scripts the account and passphrase come from ``FACEGATE_HR_ACCOUNT`` and
``FACEGATE_HR_PASSPHRASE``; otherwise they are asked on the terminal, and with no terminal to ask the
command fails at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import FaceGateError, PermissionDenied, WeakPassphrase
from core.registry import Registry
from core.registry.accounts import has_accounts, login
from core.registry.keys import HRSession
from core.registry.signing import sign_state

log = logging.getLogger(__name__)

ACCOUNT_ENV = "FACEGATE_HR_ACCOUNT"
"""Environment variable naming the HR account for scripts."""
PASSPHRASE_ENV = "FACEGATE_HR_PASSPHRASE"
"""Environment variable holding the account's passphrase for scripts."""

Credentials = tuple[str | None, str]
"""``(account name or None, passphrase)``; the name may be left out when only one account exists."""
CredentialsProvider = Callable[[], Credentials]
"""Asks for an account and passphrase when called (a terminal prompt, a dialog); raises to cancel."""

__all__ = [
    "ACCOUNT_ENV", "PASSPHRASE_ENV", "Credentials", "CredentialsProvider", "HRSession", "PermissionDenied",
    "WeakPassphrase", "authorize_hr", "credentials_from_env_or_prompt", "passphrase_from_env_or_prompt", "signed",
]


def authorize_hr(registry: Registry, credentials: CredentialsProvider, *, action: str,
                 role: str = "hr") -> HRSession:
    """Log in an HR (or, with ``role="admin"``, an admin) account for one action.

    Call it before opening a :meth:`~core.registry.Registry.transaction`, so that the audit row of a
    refusal is not rolled back with the refused action.

    Raises
    ------
    PermissionDenied
        No accounts yet, a wrong passphrase or account, or the wrong role (all audited);
        :class:`~core.errors.AccountLocked` while the account waits or is locked.  Also whatever
        ``credentials`` raises to cancel.
    """
    if not has_accounts(registry):
        raise PermissionDenied(f"This needs an HR login ({action}), and this registry has no HR accounts yet: the "
                               "administrator creates the first one with 'facegate accounts init'.")
    name, passphrase = credentials()
    session = login(registry, name, passphrase, action=action)
    if role == "admin" and session.role != "admin":
        with registry.transaction():
            registry._append_audit(session.actor, "hr_denied", action[:200], None, {"why": "needs an admin"})
        raise PermissionDenied(f"{action} needs an admin account; {session.name} is {session.role}.")
    return session


@contextlib.contextmanager
def signed(registry: Registry, session: HRSession, *, reason: str, models_dir: Path | None = None) -> Iterator[HRSession]:
    """Sign the registry's state as ``session`` when the block ends (also after an error part-way)."""
    finished = False
    try:
        yield session
        finished = True
    finally:
        try:
            sign_state(registry, session, reason=reason, models_dir=models_dir)
        except FaceGateError as exc:  # the change stays, unsigned: the console refuses it until HR signs
            log.error("could not sign the state after %s: %s", reason, exc)
            if finished:
                raise


def _ask(prompt: str, env_var: str, *, secret: bool) -> str | None:
    value = os.environ.get(env_var)
    if value:
        return value
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return None
    return getpass.getpass(prompt) if secret else input(prompt).strip()


def passphrase_from_env_or_prompt(prompt: str = "Passphrase: ", *, confirm: bool = False,
                                  env_var: str = PASSPHRASE_ENV) -> str:
    """A passphrase from ``env_var``, else asked on the terminal (twice with ``confirm``).

    Raises
    ------
    PermissionDenied
        If the variable is unset and standard input is not a terminal.
    WeakPassphrase
        If ``confirm`` and the two entries differ.
    """
    value = os.environ.get(env_var)
    if value:
        return value
    first = _ask(prompt, env_var, secret=True)
    if first is None:
        raise PermissionDenied(f"This needs a passphrase, and there is no terminal to ask for it: set {env_var} "
                               "for scripts and automation.")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise WeakPassphrase("The two passphrases differ; nothing was changed.")
    return first


def credentials_from_env_or_prompt() -> Credentials:
    """The HR account and passphrase: ``$FACEGATE_HR_ACCOUNT``/``$FACEGATE_HR_PASSPHRASE``, else the terminal.

    With no terminal the account may be left out (one account only); the passphrase may not.
    """
    name = os.environ.get(ACCOUNT_ENV) or None
    if name is None and not os.environ.get(PASSPHRASE_ENV) and sys.stdin is not None and sys.stdin.isatty():
        name = input("HR account: ").strip() or None
    return name, passphrase_from_env_or_prompt("Passphrase: ")
