"""HR authorisation (:func:`core.registry.security.authorize_hr` and :func:`~core.registry.security.signed`)
on a real registry file, and the error classes it and the registry raise.  No Qt, no models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from core import errors
from core.registry import Registry, RegistryError, security, store
from core.registry.signing import verify_state
from tests.conftest import HR_PASSPHRASE, make_hr


@pytest.fixture
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "facegate.db") as registry:
        yield registry


def answers(*values: tuple[str | None, str]):
    """A credentials provider (a stand-in for a prompt or a dialog) that records how often it was asked."""
    it = iter(values)

    def provider() -> tuple[str | None, str]:
        provider.calls += 1  # type: ignore[attr-defined]
        return next(it)

    provider.calls = 0  # type: ignore[attr-defined]
    return provider


def never() -> tuple[str | None, str]:
    raise AssertionError("this provider must not be asked")


def denials(reg: Registry) -> list[str]:
    return [a.object for a in reg.audit_log(action="hr_denied")]


def test_with_no_accounts_nothing_is_asked_and_nothing_is_authorised(reg: Registry):
    with pytest.raises(security.PermissionDenied, match="no HR accounts yet"):
        security.authorize_hr(reg, never, action="add an operator")


def test_the_right_passphrase_is_authorised_and_the_change_signed(reg: Registry):
    make_hr(reg)
    given = answers((None, HR_PASSPHRASE))
    session = security.authorize_hr(reg, given, action="erase E1")
    assert given.calls == 1 and denials(reg) == [] and session.actor == "admin:hr.lead"
    with security.signed(reg, session, reason="add E1"):
        reg.add_operator("E1", "Ada", actor=session.actor)
    assert verify_state(reg).ok


def test_a_change_that_fails_part_way_is_still_signed(reg: Registry):
    session = make_hr(reg)
    with pytest.raises(RegistryError), security.signed(reg, session, reason="two people"):
        reg.add_operator("E1", "Ada", actor=session.actor)
        reg.add_operator("E1", "Ada again", actor=session.actor)  # refused: E1 exists
    assert verify_state(reg).ok  # E1 stays, signed


def test_wrong_passphrase_is_refused_and_the_refusal_is_audited(reg: Registry):
    make_hr(reg)
    with pytest.raises(security.PermissionDenied, match=r"Wrong passphrase for 'hr.lead' \(erase E1\)"):
        security.authorize_hr(reg, answers(("hr.lead", "wrong horse battery")), action="erase E1")
    assert denials(reg) == ["erase E1"]
    assert reg.verify() == [] and verify_state(reg).ok  # a refusal changes nothing signed


def test_cancelling_the_dialog_propagates_and_changes_nothing(reg: Registry):
    make_hr(reg)

    class Cancelled(Exception):
        pass

    def cancelled() -> tuple[str | None, str]:
        raise Cancelled

    with pytest.raises(Cancelled):
        security.authorize_hr(reg, cancelled, action="erase E1")
    assert denials(reg) == []


def test_credentials_from_the_environment_or_the_terminal(monkeypatch):
    monkeypatch.setenv("FACEGATE_HR_ACCOUNT", "alice")
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", "from the environment")
    assert security.credentials_from_env_or_prompt() == ("alice", "from the environment")
    monkeypatch.delenv("FACEGATE_HR_ACCOUNT")
    monkeypatch.delenv("FACEGATE_HR_PASSPHRASE")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    with pytest.raises(security.PermissionDenied, match="no terminal.*FACEGATE_HR_PASSPHRASE"):
        security.credentials_from_env_or_prompt()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt="": "bob")
    answers_ = iter(["typed at the terminal", "typed at the terminal", "something else"])
    monkeypatch.setattr(security.getpass, "getpass", lambda prompt="": next(answers_))
    assert security.credentials_from_env_or_prompt() == ("bob", "typed at the terminal")
    with pytest.raises(security.WeakPassphrase, match="differ"):
        security.passphrase_from_env_or_prompt(confirm=True)


def test_error_classes_say_what_they_are_and_stay_importable_where_they_were():
    assert security.PermissionDenied is errors.PermissionDenied
    assert security.WeakPassphrase is errors.WeakPassphrase
    assert RegistryError is errors.RegistryError is store.RegistryError
    assert issubclass(errors.AccountLocked, errors.PermissionDenied)
    for cls in (errors.RegistryError, errors.PermissionDenied, errors.WeakPassphrase, errors.UntrustedState):
        assert issubclass(cls, errors.FaceGateError) and not issubclass(cls, errors.EnrollmentError)
