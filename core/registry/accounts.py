"""Named HR and admin accounts: logging in, the lockout, and managing accounts.

Each account has its own passphrase; the registry stores, per account, HR's master secret wrapped
under it (:mod:`.keys`) — never the passphrase, never the secret in clear.  Logging in means unwrapping
it.  Roles: ``hr`` enrolls, erases, trains, activates models and changes the decision settings;
``admin`` can do all that and also manages the accounts.

The first account is created on purpose, by :func:`init_accounts` (``facegate accounts init``), never by
whoever happens to run the first HR command.  A registry from before accounts existed may hold the old
shared HR passphrase: creating the first account then needs it, and removes it.

Wrong passphrases
-----------------
After each wrong passphrase the account must wait before the next try (1 s, 2 s, 4 s … up to 30 s),
and after :data:`MAX_FAILURES` in a row it is locked for :data:`LOCKOUT` (NIST SP 800-63B asks for such
throttling of online guessing).  Every refusal is audited.  The counters live in the database, which
the guard's account can write: they slow down guessing through FaceGate itself; a copy of the file can
be attacked offline, which is why passphrases are long and scrypt is slow.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.errors import AccountLocked, PermissionDenied, RegistryError, WeakPassphrase
from core.registry import keys
from core.registry.anchor import find_anchor
from core.registry.keys import HRSession
from core.registry.signing import PUBLIC_KEY_SETTING, registry_id, sign_state
from core.registry.sql import _iso, _parse_time

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "LEGACY_PASSPHRASE_SETTING", "LOCKOUT", "MAX_FAILURES", "MIN_LENGTH", "ROLES", "Account", "add_account",
    "change_passphrase", "has_accounts", "init_accounts", "list_accounts", "login", "reset_lockout",
    "set_disabled",
]

ROLES = ("hr", "admin")
MIN_LENGTH = 10
"""Shortest passphrase accepted for a new account or a change."""
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MAX_DELAY_S = 30.0
LEGACY_PASSPHRASE_SETTING = "security.hr_passphrase"
"""Where registries before accounts kept the one shared HR passphrase's scrypt hash."""
_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Account:
    """An HR or admin account (no secrets)."""

    name: str
    role: str
    created: datetime
    disabled: bool
    failures: int = 0
    locked_until: datetime | None = None


def _aad(rid: str, name: str, role: str) -> bytes:
    return f"facegate-account/v1|{rid}|{name}|{role}".encode()


def _check_name(name: str) -> str:
    name = unicodedata.normalize("NFKC", str(name)).strip().lower()
    if not _NAME.match(name):
        raise RegistryError(f"An account name is 2-32 lower-case letters, digits, '.', '_' or '-', starting with a "
                            f"letter (like 'alice' or 'hr.desk'), not {name!r}.")
    return name


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase.strip()) < MIN_LENGTH:
        raise WeakPassphrase(f"A passphrase needs at least {MIN_LENGTH} characters; a few unrelated words are "
                             "easier to remember and harder to guess.")


def has_accounts(registry: Registry) -> bool:
    """Whether any HR or admin account exists."""
    return registry.db.conn.execute("SELECT count(*) FROM accounts").fetchone()[0] > 0


def list_accounts(registry: Registry) -> list[Account]:
    """All accounts, by name, with their failure counters."""
    rows = registry.db.conn.execute(
        "SELECT a.name, a.role, a.created, a.disabled, coalesce(f.failures, 0), f.locked_until FROM accounts a "
        "LEFT JOIN account_failures f ON f.name = a.name ORDER BY a.name").fetchall()
    return [Account(r[0], r[1], _parse_time(r[2]) or _now(), bool(r[3]), int(r[4]), _parse_time(r[5]))
            for r in rows]


def _legacy_matches(record: Any, passphrase: str) -> bool:
    import base64
    import hashlib

    try:
        n, r, p, dklen = int(record["n"]), int(record["r"]), int(record["p"]), int(record["dklen"])
        if not (1 < n <= 2**17 and n & (n - 1) == 0 and 0 < r <= 16 and 0 < p <= 4 and 16 <= dklen <= 64
                and 128 * n * r * p <= keys.MAX_SCRYPT_MEMORY):
            return False
        salt = base64.b64decode(record["salt"], validate=True)
        expected = base64.b64decode(record["hash"], validate=True)
        got = hashlib.scrypt(unicodedata.normalize("NFKC", passphrase).encode("utf-8"), salt=salt, n=n, r=r, p=p,
                             dklen=dklen, maxmem=keys.MAX_SCRYPT_MEMORY + (1 << 20))
    except (AttributeError, KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(got, expected)


def init_accounts(registry: Registry, name: str, passphrase: str, *, role: str = "admin",
                  legacy_passphrase: str | None = None, reason: str = "first HR account; state reviewed") -> HRSession:
    """Create the first account and HR's keys, and sign the registry's current state with them.

    Parameters
    ----------
    name, passphrase, role
        The first account (an ``admin`` by default, who then adds the HR clerks).
    legacy_passphrase
        The old shared HR passphrase, required when the registry still holds one.
    reason
        Recorded with the first signature.

    Raises
    ------
    RegistryError
        If accounts exist already (add more with :func:`add_account`).
    PermissionDenied
        If the registry holds an old HR passphrase and ``legacy_passphrase`` is not it (audited).
    WeakPassphrase
        If the passphrase is too short.
    """
    name = _check_name(name)
    if role not in ROLES:
        raise RegistryError(f"The role is one of {', '.join(ROLES)}, not {role!r}.")
    _check_passphrase(passphrase)
    rid = registry_id(registry)
    master = keys.new_master()
    record = keys.wrap_master(master, passphrase, _aad(rid, name, role))  # slow: before taking the write lock
    session = HRSession(name, role, master, rid)
    public = keys.public_key_text(session.signing_key())
    anchor = find_anchor()
    if anchor is not None and anchor.public_key != public:
        raise PermissionDenied(f"A trust anchor is already installed ({anchor.path}) for other keys: the accounts of "
                               "this registry were removed. Restore the registry from a backup, or ask the "
                               "administrator to remove the old anchor first.")
    legacy = registry.get_setting(LEGACY_PASSPHRASE_SETTING)
    if legacy is not None and (legacy_passphrase is None or not _legacy_matches(legacy, legacy_passphrase)):
        registry.audit(f"{role}:{name}", "hr_denied", "create the first account (old HR passphrase wrong)")
        raise PermissionDenied("This registry still has the old shared HR passphrase: give it to create the first "
                               "account (FACEGATE_HR_PASSPHRASE, or asked on the terminal).")
    with registry.transaction():
        if has_accounts(registry):
            raise RegistryError("HR accounts exist already; an admin adds more with 'facegate accounts add'.")
        registry.db.conn.execute("INSERT INTO accounts (name, role, record, created) VALUES (?, ?, ?, ?)",
                                 [name, role, json.dumps(record), _iso()])
        if legacy is not None:
            registry.db.conn.execute("DELETE FROM settings WHERE key = ?", [LEGACY_PASSPHRASE_SETTING])
        registry.set_setting(PUBLIC_KEY_SETTING, public, actor=session.actor, secret=True)
        registry._append_audit(session.actor, "accounts_init", name, None,
                               {"role": role, "key": keys.fingerprint(public),
                                "replaced_shared_passphrase": legacy is not None})
        sign_state(registry, session, reason=reason)
    log.info("first account %s (%s) created; HR key %s", name, role, keys.fingerprint(public))
    return session


def _failure_row(registry: Registry, name: str) -> tuple[int, datetime | None, datetime | None]:
    row = registry.db.conn.execute("SELECT failures, last_failure, locked_until FROM account_failures "
                                   "WHERE name = ?", [name]).fetchone()
    if row is None:
        return 0, None, None
    try:
        return int(row[0]), _parse_time(row[1]), _parse_time(row[2])
    except (TypeError, ValueError):  # edited by hand: the counters grant nothing, so start them again
        log.warning("the failed-login counters of %s are unreadable; starting them again", name)
        return 0, None, None


def delay_after(failures: int) -> float:
    """Seconds an account waits after ``failures`` wrong passphrases in a row."""
    return 0.0 if failures <= 0 else min(2.0 ** (failures - 1), MAX_DELAY_S)


def _refuse(registry: Registry, name: str, action: str, why: str, detail: dict[str, Any]) -> None:
    with registry.transaction():
        registry._append_audit(f"login:{name}", "hr_denied", action[:200], None, {"why": why, **detail})


def login(registry: Registry, name: str | None, passphrase: str | None, *, action: str,
          clock: Clock = _now) -> HRSession:
    """Log an account in for one action: check the passphrase, the delay and the lockout, and HR's key.

    Parameters
    ----------
    name
        The account; may be omitted when only one enabled account exists.
    passphrase
        Its passphrase.
    action
        What it is for, in words (``"erase E1001"``); recorded with a refusal.
    clock
        The current time (tests move it forward instead of sleeping).

    Raises
    ------
    AccountLocked
        While the account waits after a wrong passphrase, or is locked after :data:`MAX_FAILURES` (audited).
    PermissionDenied
        No accounts, an unknown or disabled account, a wrong passphrase (audited, counted), or a key that
        is not HR's key for this registry.
    """
    rows = registry.db.conn.execute("SELECT name, role, record, disabled FROM accounts ORDER BY name").fetchall()
    if not rows:
        raise PermissionDenied(f"This needs an HR login ({action}), and this registry has no HR accounts yet: the "
                               "administrator creates the first one with 'facegate accounts init'.")
    if not name:
        enabled = [r for r in rows if not r[3]]
        if len(enabled) != 1:
            raise PermissionDenied(f"This needs an HR login ({action}): say which account (FACEGATE_HR_ACCOUNT, or "
                                   "--account).")
        name = str(enabled[0][0])
    name = str(name).strip().lower()
    match = [r for r in rows if r[0] == name]
    now = clock()
    if not match or match[0][3]:
        _refuse(registry, name, action, "unknown or disabled account", {})
        raise PermissionDenied(f"There is no enabled HR account {name!r}; nothing was changed.")
    _, role, record_text, _ = match[0]
    failures, last, locked_until = _failure_row(registry, name)
    if locked_until is not None and now < locked_until:
        _refuse(registry, name, action, "locked", {"until": _iso(locked_until)})
        raise AccountLocked(f"The account {name!r} is locked until {locked_until.astimezone():%H:%M} after "
                            f"{MAX_FAILURES} wrong passphrases; an admin can unlock it ('facegate accounts unlock').")
    wait = delay_after(failures) - ((now - last).total_seconds() if last is not None else 1e9)
    if wait > 0:
        _refuse(registry, name, action, "too soon after a wrong passphrase", {"wait_s": round(wait, 1)})
        raise AccountLocked(f"Wrong passphrase for {name!r} a moment ago: try again in {wait:.0f} s.")
    rid = registry_id(registry)
    try:
        master = keys.unwrap_master(json.loads(record_text), passphrase or "", _aad(rid, name, role))
    except (keys.RecordError, ValueError) as exc:
        _refuse(registry, name, action, "damaged key record", {})
        raise PermissionDenied(f"The key record of account {name!r} is damaged or was altered ({exc}); an admin must "
                               "reset its passphrase.") from exc
    if master is None:
        failures += 1
        locked = now + LOCKOUT if failures >= MAX_FAILURES else None
        with registry.transaction():
            registry.db.conn.execute(
                "INSERT INTO account_failures (name, failures, last_failure, locked_until) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET failures = excluded.failures, last_failure = excluded.last_failure, "
                "locked_until = excluded.locked_until",
                [name, 0 if locked else failures, _iso(now), _iso(locked) if locked else None])
            registry._append_audit(f"login:{name}", "hr_denied", action[:200], None,
                                   {"why": "wrong passphrase", "failures": failures, "locked": locked is not None})
        if locked is not None:
            raise AccountLocked(f"Wrong passphrase for {name!r}, {MAX_FAILURES} times in a row: the account is locked "
                                f"for {int(LOCKOUT.total_seconds() // 60)} minutes.")
        raise PermissionDenied(f"Wrong passphrase for {name!r} ({action}); nothing was changed.")
    session = HRSession(name, role, master, rid)
    public = keys.public_key_text(session.signing_key())
    anchor = find_anchor()
    expected = anchor.public_key if anchor is not None else registry.get_setting(PUBLIC_KEY_SETTING)
    if expected != public:
        _refuse(registry, name, action, "key is not HR's key", {"key": keys.fingerprint(public)})
        raise PermissionDenied(f"The account {name!r} unlocks a key that is not HR's key for this registry"
                               + (" (the installed trust anchor's)" if anchor else "")
                               + ": its record was replaced. Nothing was changed; tell the administrator.")
    if failures or last is not None:
        with registry.transaction():
            registry.db.conn.execute("DELETE FROM account_failures WHERE name = ?", [name])
    return session


def _require_admin(session: HRSession) -> None:
    if session.role != "admin":
        raise PermissionDenied(f"Managing accounts needs an admin account; {session.name} is {session.role}.")


def add_account(registry: Registry, session: HRSession, name: str, role: str, passphrase: str) -> None:
    """An admin adds an account (audited, signed).

    Raises
    ------
    PermissionDenied
        If ``session`` is not an admin.  ``RegistryError`` if the name is taken or invalid,
        ``WeakPassphrase`` if the passphrase is too short.
    """
    _require_admin(session)
    name = _check_name(name)
    if role not in ROLES:
        raise RegistryError(f"The role is one of {', '.join(ROLES)}, not {role!r}.")
    _check_passphrase(passphrase)
    record = session.wrap_for(passphrase, _aad(session.registry_id, name, role))
    with registry.transaction():
        if registry.db.conn.execute("SELECT 1 FROM accounts WHERE name = ?", [name]).fetchone():
            raise RegistryError(f"An account named {name!r} exists already.")
        registry.db.conn.execute("INSERT INTO accounts (name, role, record, created) VALUES (?, ?, ?, ?)",
                                 [name, role, json.dumps(record), _iso()])
        registry._append_audit(session.actor, "add_account", name, None, {"role": role})
        sign_state(registry, session, reason=f"add account {name} ({role})")


def change_passphrase(registry: Registry, session: HRSession, new_passphrase: str, *, name: str | None = None) -> None:
    """Re-wrap the master secret under a new passphrase: one's own, or (an admin) another account's."""
    target = session.name if name is None else _check_name(name)
    if target != session.name:
        _require_admin(session)
    _check_passphrase(new_passphrase)
    row = registry.db.conn.execute("SELECT role FROM accounts WHERE name = ?", [target]).fetchone()
    if row is None:
        raise RegistryError(f"There is no account named {target!r}.")
    record = session.wrap_for(new_passphrase, _aad(session.registry_id, target, row[0]))
    with registry.transaction():
        registry.db.conn.execute("UPDATE accounts SET record = ? WHERE name = ?", [json.dumps(record), target])
        registry.db.conn.execute("DELETE FROM account_failures WHERE name = ?", [target])
        registry._append_audit(session.actor, "change_passphrase", target, None, None)
        sign_state(registry, session, reason=f"new passphrase for {target}")


def set_disabled(registry: Registry, session: HRSession, name: str, disabled: bool) -> None:
    """An admin disables (or re-enables) an account; one cannot disable oneself or the last admin."""
    _require_admin(session)
    name = _check_name(name)
    if disabled and name == session.name:
        raise RegistryError("You cannot disable the account you are logged in with.")
    with registry.transaction():
        if registry.db.conn.execute("SELECT 1 FROM accounts WHERE name = ?", [name]).fetchone() is None:
            raise RegistryError(f"There is no account named {name!r}.")
        registry.db.conn.execute("UPDATE accounts SET disabled = ? WHERE name = ?", [int(disabled), name])
        registry._append_audit(session.actor, "disable_account" if disabled else "enable_account", name, None, None)
        sign_state(registry, session, reason=f"{'disable' if disabled else 'enable'} account {name}")


def reset_lockout(registry: Registry, session: HRSession, name: str) -> None:
    """An admin unlocks an account locked after wrong passphrases (audited)."""
    _require_admin(session)
    name = _check_name(name)
    with registry.transaction():
        registry.db.conn.execute("DELETE FROM account_failures WHERE name = ?", [name])
        registry._append_audit(session.actor, "unlock_account", name, None, None)
