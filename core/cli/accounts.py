"""``facegate accounts …`` and ``facegate sign``: HR and admin accounts, the trust anchor, HR's signature.

``accounts init`` creates the first account (an admin) and HR's keys, shows what is enrolled for
review and signs it, and installs the trust anchor (``--anchor-dir``, default the system folder: run
it as administrator, or install the anchor afterwards with ``accounts install-anchor``).  The new
passphrase comes from ``$FACEGATE_NEW_HR_PASSPHRASE`` or is asked twice on the terminal; logins from
``$FACEGATE_HR_ACCOUNT`` and ``$FACEGATE_HR_PASSPHRASE`` or the terminal.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from core.cli.common import (
    DATA_DIR_HELP,
    check_output_file,
    data_dir,
    format_table,
    models_dir,
    open_registry,
)
from core.errors import PermissionDenied, RegistryError

NEW_PASSPHRASE_ENV = "FACEGATE_NEW_HR_PASSPHRASE"


def _new_passphrase(whose: str) -> str:
    from core.registry.security import passphrase_from_env_or_prompt

    return passphrase_from_env_or_prompt(f"New passphrase for {whose}: ", confirm=True, env_var=NEW_PASSPHRASE_ENV)


def _review(reg: Any, yes: bool, question: str) -> None:
    from core.registry.signing import state_summary

    print("What will be signed as HR's:")
    print("\n".join(format_table(("", ""), state_summary(reg))))
    if yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        raise PermissionDenied("Review the state above and confirm with --yes (there is no terminal to ask).")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise PermissionDenied("Nothing was signed.")


def cmd_init(args: argparse.Namespace) -> int:
    """``facegate accounts init``."""
    from core.registry.accounts import LEGACY_PASSPHRASE_SETTING, has_accounts, init_accounts
    from core.registry.anchor import install_anchor
    from core.registry.keys import fingerprint
    from core.registry.security import passphrase_from_env_or_prompt
    from core.registry.signing import PUBLIC_KEY_SETTING, registry_id

    if args.anchor_dir and not args.no_anchor:
        check_output_file(Path(args.anchor_dir) / "trust-anchor.json", create_folder=True)
    cameras = _console_cameras()
    with open_registry(args) as reg:
        if has_accounts(reg):
            raise RegistryError("This registry has HR accounts already; an admin adds more with "
                                "'facegate accounts add'.")
        if cameras:
            print("Cameras of this console (console.toml), approved with it: " + ", ".join(_shown(cameras)))
        _review(reg, args.yes, "Create the first account and sign this state?")
        legacy = None
        if reg.get_setting(LEGACY_PASSPHRASE_SETTING) is not None:
            legacy = passphrase_from_env_or_prompt("The old shared HR passphrase: ")
        session = init_accounts(reg, args.name, _new_passphrase(args.name), role=args.role,
                                legacy_passphrase=legacy)
        if cameras:
            from core.registry.decision import set_approved_cameras

            set_approved_cameras(reg, session, cameras, _shown(cameras))
        public, rid = str(reg.get_setting(PUBLIC_KEY_SETTING)), registry_id(reg)
    print(f"Account {session.name} ({session.role}) created; HR's key {fingerprint(public)}; the state is signed.")
    if args.no_anchor:
        print("No trust anchor installed: the console runs UNANCHORED (see the README's security section).")
        return 0
    try:
        path = install_anchor(rid, public, Path(args.anchor_dir) if args.anchor_dir else None)
    except RegistryError as exc:
        print(f"{exc}\nUntil it is installed the console runs UNANCHORED.", file=sys.stderr)
        return 1
    print(f"Trust anchor installed: {path} (key {fingerprint(public)}).")
    return 0


def _console_cameras() -> list[str]:
    """The cameras in this account's console.toml (the demo camera when there is none), or [] if unreadable."""
    from core.errors import FaceGateError
    from core.live.settings import load_settings

    try:
        return [f"{c.name}={c.spec}" for c in load_settings().effective_cameras()]
    except (FaceGateError, OSError, ValueError) as exc:
        print(f"console.toml not read ({exc}); approve cameras with 'facegate cameras approve'.", file=sys.stderr)
        return []


def _read_only_public_key(path: Path) -> tuple[str, str]:
    # As administrator, read without writing anything into the guard's data folder (no -shm, no
    # migration, no ownership change): immutable read-only.
    import json

    if not path.is_file():
        raise RegistryError(f"There is no registry at {path}.")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        rows = dict(conn.execute("SELECT key, value FROM settings WHERE key IN ('registry.id', "
                                 "'security.public_key')").fetchall())
    except sqlite3.DatabaseError as exc:
        raise RegistryError(f"{path} is not a readable FaceGate registry ({exc}).") from exc
    finally:
        conn.close()
    if "security.public_key" not in rows:
        raise RegistryError(f"{path} has no HR accounts yet: run 'facegate accounts init' first.")
    return json.loads(rows["registry.id"]), json.loads(rows["security.public_key"])


def cmd_install_anchor(args: argparse.Namespace) -> int:
    """``facegate accounts install-anchor``."""
    from core.registry.anchor import install_anchor
    from core.registry.keys import fingerprint

    if args.anchor_dir:
        check_output_file(Path(args.anchor_dir) / "trust-anchor.json", create_folder=True)
    rid, public = _read_only_public_key(data_dir(args) / "facegate.db")
    path = install_anchor(rid, public, Path(args.anchor_dir) if args.anchor_dir else None)
    print(f"Trust anchor installed: {path}\nregistry {rid}\nHR's key {fingerprint(public)} - compare it with the "
          "one 'facegate accounts init' printed.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``facegate accounts list``."""
    from core.registry.accounts import list_accounts

    with open_registry(args) as reg:
        accounts = list_accounts(reg)
    if not accounts:
        print("No HR accounts yet: the administrator creates the first with 'facegate accounts init'.")
        return 0
    rows = [(a.name, a.role, f"{a.created:%Y-%m-%d}", "disabled" if a.disabled else
             (f"locked until {a.locked_until.astimezone():%H:%M}" if a.locked_until else
              (f"{a.failures} wrong passphrase(s)" if a.failures else "ok"))) for a in accounts]
    print("\n".join(format_table(("account", "role", "created", "state"), rows)))
    return 0


def _admin(reg: Any, action: str) -> Any:
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt

    return authorize_hr(reg, credentials_from_env_or_prompt, action=action, role="admin")


def cmd_add(args: argparse.Namespace) -> int:
    """``facegate accounts add``."""
    from core.registry.accounts import add_account

    with open_registry(args) as reg:
        session = _admin(reg, f"add account {args.name}")
        add_account(reg, session, args.name, args.role, _new_passphrase(args.name))
    print(f"Account {args.name} ({args.role}) added.")
    return 0


def cmd_passphrase(args: argparse.Namespace) -> int:
    """``facegate accounts passphrase``: change one's own passphrase (an admin: anyone's)."""
    from core.registry.accounts import change_passphrase
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt

    with open_registry(args) as reg:
        session = authorize_hr(reg, credentials_from_env_or_prompt, action="change a passphrase")
        target = args.name or session.name
        change_passphrase(reg, session, _new_passphrase(target), name=args.name)
    print(f"Passphrase of {target} changed.")
    return 0


def _admin_toggle(args: argparse.Namespace, what: str) -> int:
    from core.registry.accounts import reset_lockout, set_disabled

    with open_registry(args) as reg:
        session = _admin(reg, f"{what} account {args.name}")
        if what == "unlock":
            reset_lockout(reg, session, args.name)
        else:
            set_disabled(reg, session, args.name, what == "disable")
    print(f"Account {args.name}: {what}d." if what != "unlock" else f"Account {args.name} unlocked.")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """``facegate sign``: HR reviews and signs the current state (after an upgrade or an interrupted change)."""
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt
    from core.registry.signing import sign_state, verify_state

    with open_registry(args) as reg:
        state = verify_state(reg)
        for problem in state.problems:
            print(f"differs from the last signature: {problem}")
        session = authorize_hr(reg, credentials_from_env_or_prompt, action="sign the registry's state")
        _review(reg, args.yes, "Sign this state as HR's?")
        seq = sign_state(reg, session, reason=args.reason or "reviewed and signed", models_dir=models_dir(args))
    print(f"State signed by {session.actor} (signature {seq}).")
    return 0


def _camera_entries(specs: list[str]) -> list[str]:
    """``NAME=SPEC`` for each source, each checked as the monitor checks it (a missing file, a bad scheme)."""
    from core.live.session import parse_sources
    from core.live.sources import open_source

    entries = parse_sources(specs)
    for name, spec in entries:
        open_source(spec, name=name)  # made, never started: raises CameraError with a sentence
    return [f"{name}={spec}" for name, spec in entries]


def _shown(entries: list[str]) -> list[str]:
    from core.live.sources.addresses import display_spec

    return [f"{name}={display_spec(spec)}" for name, _, spec in (e.partition("=") for e in entries)]


def cmd_cameras_list(args: argparse.Namespace) -> int:
    """``facegate cameras list``: the cameras HR approved (passwords masked)."""
    from core.registry.decision import approved_cameras

    with open_registry(args) as reg:
        entries = approved_cameras(reg)
    if entries is None:
        print("HR has not approved any camera yet.")
    for line in _shown(entries or []):
        print(line)
    return 0


def cmd_cameras_change(args: argparse.Namespace, approve: bool) -> int:
    """``facegate cameras approve|revoke``."""
    from core.registry.decision import approved_cameras, set_approved_cameras
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt

    given = _camera_entries(args.specs) if approve else []
    with open_registry(args) as reg:
        current = approved_cameras(reg) or []
        if approve:
            names = {e.partition("=")[0] for e in given}
            entries = [e for e in current if e.partition("=")[0] not in names] + given
        else:
            entries = [e for e in current if e.partition("=")[0] not in set(args.names)]
            unknown = set(args.names) - {e.partition("=")[0] for e in current}
            if unknown:
                raise RegistryError(f"No approved camera is named {', '.join(sorted(unknown))}; see "
                                    "'facegate cameras list'.")
        session = authorize_hr(reg, credentials_from_env_or_prompt,
                               action=f"{'approve' if approve else 'revoke'} cameras")
        set_approved_cameras(reg, session, entries, _shown(entries))
    print("Approved cameras: " + (", ".join(_shown(entries)) or "none"))
    return 0


def register(sub: Any) -> None:
    """Add ``accounts`` and ``sign`` to the ``facegate`` sub-parser."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--data-dir", help=DATA_DIR_HELP)
    accounts = sub.add_parser("accounts", help="HR and admin accounts, the trust anchor").add_subparsers(
        dest="accounts_cmd", required=True)
    p = accounts.add_parser("init", parents=[shared], help="create the first account and sign the state")
    p.add_argument("--name", required=True, help="account name, e.g. alice")
    p.add_argument("--role", choices=("admin", "hr"), default="admin", help="role of the first account (admin)")
    p.add_argument("--anchor-dir", help="where to install the trust anchor (default: the system folder)")
    p.add_argument("--no-anchor", action="store_true", help="do not install a trust anchor (unanchored)")
    p.add_argument("--yes", action="store_true", help="sign what is enrolled without asking")
    p.set_defaults(func=cmd_init)
    p = accounts.add_parser("install-anchor", parents=[shared], help="install the trust anchor (administrator)")
    p.add_argument("--anchor-dir", help="where (default: the system folder)")
    p.set_defaults(func=cmd_install_anchor)
    accounts.add_parser("list", parents=[shared], help="list accounts").set_defaults(func=cmd_list)
    p = accounts.add_parser("add", parents=[shared], help="add an account (admin)")
    p.add_argument("--name", required=True, help="account name")
    p.add_argument("--role", choices=("hr", "admin"), default="hr", help="role (hr)")
    p.set_defaults(func=cmd_add)
    p = accounts.add_parser("passphrase", parents=[shared], help="change a passphrase")
    p.add_argument("--name", help="another account's (admin only)")
    p.set_defaults(func=cmd_passphrase)
    for what in ("disable", "enable", "unlock"):
        p = accounts.add_parser(what, parents=[shared], help=f"{what} an account (admin)")
        p.add_argument("name", help="account name")
        p.set_defaults(func=lambda a, w=what: _admin_toggle(a, w))
    cameras = sub.add_parser("cameras", help="the cameras HR approved").add_subparsers(dest="cameras_cmd",
                                                                                        required=True)
    cameras.add_parser("list", parents=[shared], help="list approved cameras").set_defaults(func=cmd_cameras_list)
    p = cameras.add_parser("approve", parents=[shared], help="approve cameras (HR)")
    p.add_argument("specs", nargs="+", metavar="SOURCE", help="NAME=SPEC or SPEC, as 'facegate monitor --source'")
    p.set_defaults(func=lambda a: cmd_cameras_change(a, True))
    p = cameras.add_parser("revoke", parents=[shared], help="withdraw approval of cameras (HR)")
    p.add_argument("names", nargs="+", metavar="NAME", help="camera names")
    p.set_defaults(func=lambda a: cmd_cameras_change(a, False))
    p = sub.add_parser("sign", parents=[shared], help="review and sign the registry's current state (HR)")
    p.add_argument("--yes", action="store_true", help="sign without asking")
    p.add_argument("--reason", help="recorded with the signature")
    p.set_defaults(func=cmd_sign)


__all__ = ["register"]
