"""Named HR and admin accounts: the first one made on purpose, logins, the delay and the lockout, roles,
passphrase changes that re-wrap the key, and the keys' bounds.  Real SQLite files, no models."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import AccountLocked, PermissionDenied, RegistryError, WeakPassphrase
from core.registry import Registry, accounts, keys
from core.registry.signing import verify_state
from tests.conftest import HR_PASSPHRASE, make_hr


@pytest.fixture()
def reg(tmp_path):
    with Registry.open(tmp_path / "facegate.db") as r:
        yield r


def audit_actions(reg: Registry) -> list[str]:
    return [a.action for a in reg.audit_log()]


def test_the_first_account_is_made_on_purpose_never_by_the_first_hr_command(reg):
    from core.registry.security import authorize_hr

    # Old code: the first HR command set the passphrase to whatever its caller typed.
    with pytest.raises(PermissionDenied, match="no HR accounts yet.*accounts init"):
        authorize_hr(reg, lambda: (None, "attacker's choice of passphrase"), action="enroll E1")
    assert not accounts.has_accounts(reg)
    session = make_hr(reg)
    assert session.actor == "admin:hr.lead" and "hr.lead" in repr(session) and HR_PASSPHRASE not in repr(session)
    with pytest.raises(RegistryError, match="exist already"):
        accounts.init_accounts(reg, "mallory", "another long passphrase")
    assert verify_state(reg).ok and verify_state(reg).mode == "unanchored"
    assert "accounts_init" in audit_actions(reg) and "sign_state" in audit_actions(reg)


def test_nothing_secret_is_stored_in_clear(reg):
    make_hr(reg)
    dump = "\n".join(reg.db.conn.iterdump())
    assert HR_PASSPHRASE not in dump
    record = json.loads(reg.db.conn.execute("SELECT record FROM accounts").fetchone()[0])
    assert set(record) == {"kdf", "n", "r", "p", "salt", "cipher", "nonce", "sealed"}


def test_login_names_the_account_and_the_audit_actor_is_the_account(reg):
    from core.registry.security import authorize_hr, signed

    admin = make_hr(reg)
    accounts.add_account(reg, admin, "clerk", "hr", "clerk's own long passphrase")
    with pytest.raises(PermissionDenied, match="say which account"):
        accounts.login(reg, None, HR_PASSPHRASE, action="t")  # two accounts: the name is needed
    session = authorize_hr(reg, lambda: ("clerk", "clerk's own long passphrase"), action="add E1")
    with signed(reg, session, reason="add E1"):
        reg.add_operator("E1", "Ada", actor=session.actor)
    assert reg.audit_log()[-2].actor == "hr:clerk"  # the add_operator row, before the signature's
    assert verify_state(reg).ok
    # An HR clerk cannot manage accounts.
    with pytest.raises(PermissionDenied, match="needs an admin"):
        accounts.add_account(reg, session, "eve", "admin", "eve's long passphrase")
    with pytest.raises(PermissionDenied, match="needs an admin"):
        authorize_hr(reg, lambda: ("clerk", "clerk's own long passphrase"), action="add an account", role="admin")


def test_wrong_passphrases_are_delayed_then_locked_and_audited(reg):
    make_hr(reg)
    now = [datetime(2026, 1, 1, 8, 0, tzinfo=UTC)]

    def clock() -> datetime:
        return now[0]

    for attempt in range(1, accounts.MAX_FAILURES):
        with pytest.raises(PermissionDenied, match="Wrong passphrase") as info:
            accounts.login(reg, "hr.lead", f"guess number {attempt}", action="erase E1", clock=clock)
        assert not isinstance(info.value, AccountLocked)
        # Too soon: refused without even checking (the right passphrase would not help).
        with pytest.raises(AccountLocked, match="try again in"):
            accounts.login(reg, "hr.lead", HR_PASSPHRASE, action="erase E1", clock=clock)
        now[0] += timedelta(seconds=accounts.delay_after(attempt) + 0.5)
    assert [accounts.delay_after(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(AccountLocked, match="locked for 15 minutes"):
        accounts.login(reg, "hr.lead", "guess number 5", action="erase E1", clock=clock)
    now[0] += timedelta(minutes=14)
    with pytest.raises(AccountLocked, match="locked until"):
        accounts.login(reg, "hr.lead", HR_PASSPHRASE, action="erase E1", clock=clock)
    now[0] += timedelta(minutes=2)
    session = accounts.login(reg, "hr.lead", HR_PASSPHRASE, action="erase E1", clock=clock)
    assert session.name == "hr.lead"
    denied = [a for a in reg.audit_log() if a.action == "hr_denied"]
    assert len(denied) >= 2 * (accounts.MAX_FAILURES - 1) + 2
    assert all(a.object == "erase E1" for a in denied)
    assert accounts.list_accounts(reg)[0].failures == 0  # reset by the good login


def test_an_admin_unlocks_a_locked_account(reg):
    admin = make_hr(reg)
    accounts.add_account(reg, admin, "clerk", "hr", "clerk's own long passphrase")
    from core.registry.sql import _iso

    reg.db.conn.execute("INSERT INTO account_failures VALUES ('clerk', 0, ?, ?)",
                        [_iso(), _iso(datetime.now(UTC) + timedelta(minutes=10))])
    with pytest.raises(AccountLocked):
        accounts.login(reg, "clerk", "clerk's own long passphrase", action="t")
    accounts.reset_lockout(reg, admin, "clerk")
    assert accounts.login(reg, "clerk", "clerk's own long passphrase", action="t").role == "hr"


def test_a_passphrase_change_rewraps_the_key_and_nothing_needs_resigning(reg):
    session = make_hr(reg)
    reg.add_operator("E1", "Ada", actor=session.actor)
    from core.registry.signing import sign_state

    sign_state(reg, session, reason="E1")
    before = keys.public_key_text(session.signing_key())
    with pytest.raises(WeakPassphrase):
        accounts.change_passphrase(reg, session, "short")
    accounts.change_passphrase(reg, session, "a brand new long passphrase")
    with pytest.raises(PermissionDenied, match="Wrong passphrase"):
        accounts.login(reg, "hr.lead", HR_PASSPHRASE, action="t")
    again = accounts.login(reg, "hr.lead", "a brand new long passphrase", action="t", clock=lambda: datetime.now(UTC)
                           + timedelta(minutes=1))
    assert keys.public_key_text(again.signing_key()) == before
    assert verify_state(reg).ok


def test_disabled_accounts_cannot_log_in(reg):
    admin = make_hr(reg)
    accounts.add_account(reg, admin, "clerk", "hr", "clerk's own long passphrase")
    accounts.set_disabled(reg, admin, "clerk", True)
    with pytest.raises(PermissionDenied, match="no enabled HR account"):
        accounts.login(reg, "clerk", "clerk's own long passphrase", action="t")
    with pytest.raises(RegistryError, match="cannot disable the account you are logged in"):
        accounts.set_disabled(reg, admin, "hr.lead", True)
    assert verify_state(reg).ok


def test_a_role_changed_by_sql_no_longer_unlocks(reg):
    admin = make_hr(reg)
    accounts.add_account(reg, admin, "clerk", "hr", "clerk's own long passphrase")
    reg.db.conn.execute("UPDATE accounts SET role = 'admin' WHERE name = 'clerk'")
    with pytest.raises(PermissionDenied, match="damaged or was altered|Wrong passphrase"):
        accounts.login(reg, "clerk", "clerk's own long passphrase", action="t")
    assert not verify_state(reg).ok


def test_the_old_shared_passphrase_is_needed_to_make_the_first_account(reg):
    # A registry from before accounts: its HR passphrase record, as the old code wrote it.
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"the old shared one", salt=salt, n=2**14, r=8, p=1, dklen=32)
    reg.db.conn.execute("INSERT INTO settings VALUES ('security.hr_passphrase', ?, '2025-01-01')", [json.dumps(
        {"algorithm": "scrypt", "n": 2**14, "r": 8, "p": 1, "dklen": 32, "salt": base64.b64encode(salt).decode(),
         "hash": base64.b64encode(digest).decode()})])
    with pytest.raises(PermissionDenied, match="old shared HR passphrase"):
        accounts.init_accounts(reg, "alice", "alice's long passphrase", legacy_passphrase="a wrong guess")
    accounts.init_accounts(reg, "alice", "alice's long passphrase", legacy_passphrase="the old shared one")
    assert reg.get_setting(accounts.LEGACY_PASSPHRASE_SETTING) is None


@pytest.mark.parametrize("n, r, p", [(2**22, 8, 1), (2**15, 1024, 1), (2**15, 8, 64), (3, 8, 1)])
def test_scrypt_parameters_from_the_database_are_bounded(reg, n, r, p):
    make_hr(reg)
    record = json.loads(reg.db.conn.execute("SELECT record FROM accounts").fetchone()[0])
    record.update(n=n, r=r, p=p)
    reg.db.conn.execute("UPDATE accounts SET record = ?", [json.dumps(record)])
    # Old code allowed n=2**20, r=32: a 4 GiB check.  Refused at once, without running scrypt.
    with pytest.raises(PermissionDenied, match="damaged or was altered"):
        accounts.login(reg, "hr.lead", HR_PASSPHRASE, action="t")


def test_names_are_checked(reg):
    with pytest.raises(RegistryError, match="account name"):
        accounts.init_accounts(reg, "Robert'); DROP TABLE accounts;--", "a long passphrase here")
    with pytest.raises(WeakPassphrase):
        accounts.init_accounts(reg, "alice", "short")
    assert not accounts.has_accounts(reg)


def test_the_failure_counters_are_the_only_unsigned_account_data(tmp_path):
    with Registry.open(tmp_path / "facegate.db") as reg:
        make_hr(reg)
    with sqlite3.connect(tmp_path / "facegate.db") as conn:
        conn.execute("INSERT INTO account_failures VALUES ('hr.lead', 3, 'not a time', NULL)")
    with Registry.open(tmp_path / "facegate.db") as reg:
        assert verify_state(reg).ok
        assert accounts.login(reg, None, HR_PASSPHRASE, action="t").name == "hr.lead"  # a damaged counter: no crash


# -- the CLI ---------------------------------------------------------------------------------------------


def test_cli_init_installs_the_anchor_and_verify_says_anchored(tmp_path, monkeypatch, capsys):
    import os

    from core.cli.main import main

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEGATE_NEW_HR_PASSPHRASE", HR_PASSPHRASE)
    monkeypatch.setenv("FACEGATE_CONFIG_DIR", str(tmp_path / "config"))  # no console.toml: the demo camera
    capsys.readouterr()
    assert main(["-q", "accounts", "init", "--name", "alice"]) == 2  # no terminal to confirm the review
    assert "--yes" in capsys.readouterr().err
    assert main(["-q", "accounts", "init", "--name", "alice", "--yes"]) == 0
    out = capsys.readouterr().out
    anchor = Path(os.environ["FACEGATE_TRUST_DIR"]) / "trust-anchor.json"
    assert "Trust anchor installed" in out and anchor.is_file() and anchor.stat().st_mode & 0o777 == 0o644
    assert main(["-q", "verify"]) == 0
    assert "anchored at" in capsys.readouterr().out
    assert main(["-q", "cameras", "list"]) == 0
    assert capsys.readouterr().out.strip() == "demo=demo"  # the console's cameras, approved with the first account
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", HR_PASSPHRASE)
    assert main(["-q", "cameras", "approve", "north=rtsp://admin:hunter2@10.0.0.7/s?pwd=hunter2"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "north=rtsp://admin:***@10.0.0.7/s?pwd=***" in out
    assert main(["-q", "audit"]) == 0
    assert "hunter2" not in capsys.readouterr().out
    # The anchor can be installed again by an administrator from the registry, read-only.
    anchor.unlink()
    assert main(["-q", "accounts", "install-anchor"]) == 0
    assert anchor.is_file() and "compare it" in capsys.readouterr().out
    # A second init is refused.
    assert main(["-q", "accounts", "init", "--name", "bob", "--yes"]) == 2
    assert "already" in capsys.readouterr().err


def test_cli_account_management(tmp_path, monkeypatch, capsys):
    from core.cli.main import main

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEGATE_NEW_HR_PASSPHRASE", HR_PASSPHRASE)
    assert main(["-q", "accounts", "init", "--name", "alice", "--no-anchor", "--yes"]) == 0
    monkeypatch.setenv("FACEGATE_HR_ACCOUNT", "alice")
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", HR_PASSPHRASE)
    monkeypatch.setenv("FACEGATE_NEW_HR_PASSPHRASE", "bob's own long passphrase")
    assert main(["-q", "accounts", "add", "--name", "bob"]) == 0
    assert main(["-q", "accounts", "disable", "bob"]) == 0
    capsys.readouterr()
    assert main(["-q", "accounts", "list"]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "admin" in out and "disabled" in out
    assert main(["-q", "accounts", "enable", "bob"]) == 0
    monkeypatch.setenv("FACEGATE_HR_ACCOUNT", "bob")
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", "bob's own long passphrase")
    assert main(["-q", "accounts", "add", "--name", "carol"]) == 2  # an HR clerk manages no accounts
    assert "needs an admin" in capsys.readouterr().err
    assert main(["-q", "people", "add", "--id", "E1", "--name", "Ada"]) == 0
    assert main(["-q", "sign", "--yes"]) == 0
    assert main(["-q", "verify"]) == 0
    assert "signed by hr:bob" in capsys.readouterr().out
