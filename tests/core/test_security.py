"""HR authorisation (:func:`core.registry.security.authorize_hr`) on a real registry file, and the
error classes it and the registry raise.  No Qt, no models."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import errors
from core.registry import Registry, RegistryError, security, store

ACTOR = "hr:alice"
GOOD = "correct horse battery"


@pytest.fixture
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "facegate.db") as registry:
        yield registry


def answers(*values: str):
    """A passphrase provider (a stand-in for a prompt or a dialog) that records how often it was asked."""
    it = iter(values)

    def provider() -> str:
        provider.calls += 1  # type: ignore[attr-defined]
        return next(it)

    provider.calls = 0  # type: ignore[attr-defined]
    return provider


def never() -> str:
    raise AssertionError("this provider must not be asked")


def denials(reg: Registry) -> list[tuple[str, str]]:
    return [(a.actor, a.object) for a in reg.audit_log(action="hr_denied")]


def test_first_use_sets_the_passphrase_from_the_new_passphrase_provider(reg: Registry):
    new = answers(GOOD)
    assert security.authorize_hr(reg, never, action="add an operator", actor=ACTOR,
                                 new_passphrase_provider=new) == ACTOR
    assert new.calls == 1 and security.has_passphrase(reg) and security.check_passphrase(reg, GOOD)
    [entry] = reg.audit_log(action="set_setting")
    assert (entry.actor, entry.object, entry.new) == (ACTOR, security.PASSPHRASE_SETTING, {"value": "<secret>"})
    assert denials(reg) == []


def test_right_passphrase_is_authorised_without_asking_for_a_new_one(reg: Registry):
    security.set_passphrase(reg, GOOD)
    given = answers(GOOD)
    assert security.authorize_hr(reg, given, action="erase E1", actor=ACTOR, new_passphrase_provider=never) == ACTOR
    assert given.calls == 1 and denials(reg) == []


def test_wrong_passphrase_is_refused_and_the_refusal_is_audited(reg: Registry):
    security.set_passphrase(reg, GOOD)
    with pytest.raises(security.PermissionDenied, match=r"needs the HR passphrase \(erase E1\).*wrong"):
        security.authorize_hr(reg, answers("wrong horse battery"), action="erase E1", actor=ACTOR,
                              new_passphrase_provider=never)
    assert denials(reg) == [(ACTOR, "erase E1")]
    assert security.check_passphrase(reg, GOOD)  # a refusal changes nothing else
    assert reg.verify() == []


def test_first_use_without_a_new_passphrase_provider_is_refused(reg: Registry):
    with pytest.raises(security.PermissionDenied, match="none has been set yet"):
        security.authorize_hr(reg, never, action="erase E1", actor=ACTOR)
    assert not security.has_passphrase(reg)


def test_a_weak_first_passphrase_sets_nothing(reg: Registry):
    with pytest.raises(security.WeakPassphrase, match="at least"):
        security.authorize_hr(reg, never, action="erase E1", actor=ACTOR, new_passphrase_provider=answers("short"))
    assert not security.has_passphrase(reg)


def test_cancelling_the_dialog_propagates_and_changes_nothing(reg: Registry):
    security.set_passphrase(reg, GOOD)

    class Cancelled(Exception):
        pass

    def cancelled() -> str:
        raise Cancelled

    with pytest.raises(Cancelled):
        security.authorize_hr(reg, cancelled, action="erase E1", actor=ACTOR)
    assert denials(reg) == []


def test_error_classes_say_what_they_are_and_stay_importable_where_they_were():
    assert security.PermissionDenied is errors.PermissionDenied
    assert security.WeakPassphrase is errors.WeakPassphrase
    assert RegistryError is errors.RegistryError is store.RegistryError
    for cls in (errors.RegistryError, errors.PermissionDenied, errors.WeakPassphrase):
        assert issubclass(cls, errors.FaceGateError) and not issubclass(cls, errors.EnrollmentError)
