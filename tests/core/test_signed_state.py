"""HR-signed state: each of the review's plain-SQL edits of what decides who is let in is caught by
``verify`` and refused by the model loader the console uses, on a copy of the real demo registry (real
FaceNet embeddings, a real trained model).  On the old code every one of these edits went unnoticed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.errors import PermissionDenied, UntrustedState
from core.registry import Registry, accounts, keys
from core.registry.anchor import install_anchor
from core.registry.signing import PUBLIC_KEY_SETTING, registry_id, sign_state, verify_state
from core.registry.training import load_active_model
from tests.conftest import HR_PASSPHRASE, make_hr


@pytest.fixture()
def signed_dir(demo_registry, tmp_path) -> Path:
    """A copy of the demo registry, signed by HR, with the trust anchor installed (anchored)."""
    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)
    with Registry.open(data / "facegate.db") as reg:
        make_hr(reg)
        install_anchor(registry_id(reg), reg.get_setting(PUBLIC_KEY_SETTING))
        state = verify_state(reg)
        assert state.ok and state.mode == "anchored", state.problems
    return data


def sql(data: Path, statement: str | list[str], params=()) -> None:
    with sqlite3.connect(data / "facegate.db") as conn:
        for one in [statement] if isinstance(statement, str) else statement:
            conn.execute(one, params if "?" in one else [])


def refused(data: Path, match: str) -> None:
    with Registry.open(data / "facegate.db") as reg:
        state = verify_state(reg)
        assert not state.ok and any(match in p for p in state.problems), state.problems
        assert state.status().startswith("REFUSED")
        with pytest.raises(UntrustedState, match="does not match what HR signed"):
            load_active_model(reg, data / "models", live_gallery=True)


EDITS = {
    "a stranger's photo and embedding added to an enrolled person": (
        ["INSERT INTO photos (operator_id, sha256, image, source, quality, created) SELECT operator_id, "
         "'x' || sha256, image, source, quality, created FROM photos LIMIT 1",
         "INSERT INTO embeddings (photo_id, operator_id, vector, dim, embedder, embedder_version, created) "
         "SELECT last_insert_rowid(), operator_id, ?, dim, embedder, embedder_version, created FROM embeddings "
         "LIMIT 1"], "the face embeddings"),
    "an embedding's vector replaced": (
        "UPDATE embeddings SET vector = ? WHERE id = (SELECT min(id) FROM embeddings)", "the face embeddings"),
    "a new operator": (
        "INSERT INTO operators (employee_id, name, department, created) VALUES ('E666', 'Mallory', '', "
        "'2026-01-01T00:00:00.000000Z')", "the operators"),
    "an operator deactivated by HR switched back on": (
        "UPDATE operators SET name = 'Someone Else' WHERE id = (SELECT min(id) FROM operators)", "the operators"),
    "a photo added to an enrolled person": (
        "INSERT INTO photos (operator_id, sha256, image, source, quality, created) SELECT operator_id, 'x' || sha256, "
        "image, source, quality, created FROM photos LIMIT 1", "the photos"),
    "the active model's folder pointed elsewhere": (
        "UPDATE model_versions SET path = '/tmp/elsewhere' WHERE active = 1", "the model versions"),
    "the decision threshold loosened": (
        "INSERT INTO settings (key, value, updated) VALUES ('decision.policy', '{\"decider\": \"svc\", "
        "\"min_probability\": 0.0, \"min_margin\": 0.0, \"threshold\": 1.9, \"min_face\": 20}', '2026')",
        "the settings"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_sql_edit_of_what_decides_who_is_let_in_is_refused(signed_dir, edit):
    statement, what = EDITS[edit]
    sql(signed_dir, statement, [np.random.default_rng(0).normal(size=128).astype(np.float32).tobytes()])
    refused(signed_dir, what)


def test_the_refusal_is_audited_and_the_console_says_so(signed_dir):
    from core.registry.signing import audit_refusal

    sql(signed_dir, "UPDATE operators SET active = 1 - active WHERE id = (SELECT min(id) FROM operators)")
    with Registry.open(signed_dir / "facegate.db") as reg:
        try:
            load_active_model(reg, signed_dir / "models", live_gallery=True)
        except UntrustedState as exc:
            audit_refusal(reg, "console", str(exc))
        assert [a.action for a in reg.audit_log()][-1] == "state_refused"


def test_a_passphrase_swap_does_not_give_hr_powers(signed_dir):
    # The attacker writes an account record they know the passphrase of (their own master secret),
    # as the old code allowed with the one HR passphrase hash in `settings`.
    with Registry.open(signed_dir / "facegate.db") as reg:
        rid = registry_id(reg)
    mine = keys.wrap_master(keys.new_master(), "mallory's passphrase", f"facegate-account/v1|{rid}|hr.lead|admin".encode())
    sql(signed_dir, "UPDATE accounts SET record = ?", [json.dumps(mine)])
    with Registry.open(signed_dir / "facegate.db") as reg:
        with pytest.raises(PermissionDenied, match="not HR's key"):
            accounts.login(reg, "hr.lead", "mallory's passphrase", action="enroll E666")
        assert not verify_state(reg).ok
        assert [a.action for a in reg.audit_log()][-1] == "hr_denied"


def test_resigning_with_an_attackers_own_key_fails_against_the_anchor(signed_dir):
    """All of accounts, public key and signature replaced: caught only because the anchor is elsewhere."""
    sql(signed_dir, "DROP TRIGGER signatures_no_delete")
    sql(signed_dir, "DELETE FROM signatures")
    sql(signed_dir, "DELETE FROM accounts")
    sql(signed_dir, "DELETE FROM settings WHERE key = 'security.public_key'")
    with Registry.open(signed_dir / "facegate.db") as reg:
        state = verify_state(reg)
        assert not state.ok and "no HR signature" in state.problems[0]
        with pytest.raises(PermissionDenied, match="trust anchor is already installed"):
            accounts.init_accounts(reg, "mallory", "mallory's passphrase")


def test_unanchored_mode_catches_edits_made_without_the_key(demo_registry, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)
    with Registry.open(data / "facegate.db") as reg:
        assert verify_state(reg).mode == "unsigned" and verify_state(reg).ok  # the migration state: says so
        assert "UNSIGNED" in verify_state(reg).status()
        make_hr(reg)
        assert verify_state(reg).mode == "unanchored" and "UNANCHORED" in verify_state(reg).status()
    sql(data, "UPDATE operators SET department = 'x'")
    refused(data, "the operators")


def test_swapped_model_files_are_refused_before_they_are_unpickled(signed_dir, tmp_path):
    with Registry.open(signed_dir / "facegate.db") as reg:
        session = accounts.login(reg, None, HR_PASSPHRASE, action="t")
        older = reg.active_model()
        # A second, legitimately trained version (now active), then the older one's files copied over it.
        from core.recognition.engine import FacePipeline
        from core.registry.training import retrain

        newer = retrain(reg, FacePipeline(), signed_dir / "models", actor=session.actor)
        assert newer.active
        sign_state(reg, session, reason="retrained")
        folder = signed_dir / "models" / Path(newer.path).name
        shutil.copy(signed_dir / "models" / Path(older.path).name / "model.joblib", folder / "model.joblib")
        assert verify_state(reg).ok  # the rows are unchanged; the files are checked where they are used
        with pytest.raises(UntrustedState, match="differ from the ones HR signed"):
            load_active_model(reg, signed_dir / "models", live_gallery=True)


def test_rows_older_than_the_last_signature_cannot_be_deleted(signed_dir):
    with Registry.open(signed_dir / "facegate.db") as reg:
        session = accounts.login(reg, None, HR_PASSPHRASE, action="t")
        reg.record_event("gate", "unknown", None, {}, 0.9, None, "v1")
        sign_state(reg, session, reason="checkpoint")
    for trigger in ("audit_no_delete", "events_delete_purged_only"):
        sql(signed_dir, f"DROP TRIGGER {trigger}")
    sql(signed_dir, "DELETE FROM events WHERE id = (SELECT max(id) FROM events)")
    with Registry.open(signed_dir / "facegate.db") as reg:
        problems = verify_state(reg).problems
        assert any("events row" in p and "missing" in p for p in problems), problems


def test_a_running_monitor_refuses_unsigned_changes_and_keeps_the_model_it_verified(signed_dir, pipeline):
    """The console's model watcher, on the real demo camera: an unsigned change is refused (audited, an
    error, the verified model kept); HR's signed change is taken up live."""
    import threading

    from core.live.monitor import Monitor, MonitorOptions
    from core.live.sources import open_source
    from core.registry.security import signed

    with Registry.open(signed_dir / "facegate.db") as reg:
        loaded_state = reg.gallery_state()
        model = load_active_model(reg, signed_dir / "models", live_gallery=True)
    errors: list[str] = []
    reloaded: list[object] = []
    refused_event, reloaded_event = threading.Event(), threading.Event()

    def on_error(where: str, message: str, fatal: bool) -> None:
        errors.append(message)
        refused_event.set()

    def on_model(new) -> None:
        reloaded.append(new)
        reloaded_event.set()

    monitor = Monitor([open_source("demo")], model, pipeline, MonitorOptions(reload_every_s=0.2),
                      registry_path=signed_dir / "facegate.db", models_dir=signed_dir / "models",
                      on_error=on_error, on_model=on_model, loaded_state=loaded_state)
    monitor.start()
    try:
        first = monitor.models.get()
        sql(signed_dir, "UPDATE operators SET active = 0 WHERE employee_id = 'madonna'")  # no signature
        assert refused_event.wait(60), "the watcher never looked at the change"
        assert "keeping the current model" in errors[0] and "does not match what HR signed" in errors[0]
        assert monitor.models.get() is first and not reloaded
        with Registry.open(signed_dir / "facegate.db") as reg:
            assert [a.action for a in reg.audit_log()][-1] == "state_refused"
            # HR puts it right and makes a signed change: the console takes it up without a restart.
            session = accounts.login(reg, None, HR_PASSPHRASE, action="deactivate madonna")
            with signed(reg, session, reason="deactivate madonna"):
                reg.set_active("madonna", True, actor=session.actor)
                reg.set_active("madonna", False, actor=session.actor)
        assert reloaded_event.wait(60), "the signed change was not taken up"
        assert "madonna" not in set(monitor.models.get().gallery.identities.tolist())
    finally:
        monitor.stop()
