"""Who is let in cannot be changed from the guard's side at run time: the decision options of `facegate
monitor`, the console's own `[policy]`, an unapproved camera, the demo bootstrap.  Real registry (a copy of
the demo one, real FaceNet embeddings), real video file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.live.session import LiveSession, SessionCallbacks, SessionSettings
from core.recognition.engine import Policy
from core.registry import Registry
from tests.conftest import HR_PASSPHRASE, madonna_then_stranger, make_hr, write_clip


@pytest.fixture(scope="module")
def gate_clip(tmp_path_factory, seed, strangers_dir) -> Path:
    return write_clip(madonna_then_stranger(seed, strangers_dir), tmp_path_factory.mktemp("clips") / "gate.avi")


@pytest.fixture()
def hr_dir(demo_registry, tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)
    with Registry.open(data / "facegate.db") as reg:
        make_hr(reg)
    return data


def run_session(data: Path, source: str, **settings) -> LiveSession:
    errors = []
    session = LiveSession(SessionSettings(sources=(source,), data_dir=data, **settings),
                          SessionCallbacks(on_error=errors.append))
    session.start()
    assert session.wait(180)
    session.stop()
    session.errors = errors  # type: ignore[attr-defined]
    return session


def test_monitor_decision_options_need_an_hr_login(hr_dir, gate_clip, monkeypatch, capsys):
    from core.cli.main import main

    monkeypatch.delenv("FACEGATE_HR_PASSPHRASE", raising=False)
    code = main(["monitor", "--data-dir", str(hr_dir), "--source", str(gate_clip), "--threshold", "1.9"])
    err = capsys.readouterr().err
    assert code == 2 and "FACEGATE_HR_PASSPHRASE" in err and len(err.strip().splitlines()) == 1
    with Registry.open(hr_dir / "facegate.db") as reg:
        assert not reg.audit_log(action="policy_override")


def test_an_authorised_override_is_audited(hr_dir, gate_clip, monkeypatch):
    from core.cli.main import build_parser
    from core.cli.monitor import _authorize_overrides

    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", HR_PASSPHRASE)
    args = build_parser().parse_args(["monitor", "--data-dir", str(hr_dir), "--source", str(gate_clip),
                                      "--min-probability", "0.9", "--min-face", "60"])
    assert _authorize_overrides(args) == "admin:hr.lead"
    with Registry.open(hr_dir / "facegate.db") as reg:
        [row] = reg.audit_log(action="policy_override")
        assert row.actor == "admin:hr.lead" and row.new == {"min_probability": 0.9, "min_face": 60}
    no_options = build_parser().parse_args(["monitor", "--data-dir", str(hr_dir)])
    assert _authorize_overrides(no_options) == ""  # nothing given: nothing asked


def test_unapproved_cameras_do_not_run_and_the_policy_comes_from_the_signed_settings(hr_dir, gate_clip):
    from core.registry.accounts import login
    from core.registry.decision import set_approved_cameras, set_decision_settings

    session = run_session(hr_dir, f"gate={gate_clip}")
    assert session.ended.reason == "failed" and "not one HR approved" in session.ended.error.message
    with Registry.open(hr_dir / "facegate.db") as reg:
        hr = login(reg, None, HR_PASSPHRASE, action="approve the gate camera")
        set_approved_cameras(reg, hr, [f"gate={gate_clip}"], ["gate=clip"])
        set_decision_settings(reg, hr, Policy(decider="svc", min_probability=0.6), 80)
    # console.toml's copy, edited by the guard's account, asks for a threshold of 1.99: not used.
    session = run_session(hr_dir, f"gate={gate_clip}", policy=Policy(threshold=1.99), min_face=20)
    assert session.ended.reason == "sources-ended", session.ended
    info = session.model_info
    assert info.policy == Policy(decider="svc", min_probability=0.6) and info.min_face == 80
    assert "signed by admin:hr.lead" in info.trust and "UNANCHORED" in info.trust


def test_the_demo_never_bootstraps_a_registry_hr_owns(tmp_path):
    from core.demo.setup import ensure_demo_registry

    with Registry.open(tmp_path / "facegate.db") as reg:
        make_hr(reg)
        assert ensure_demo_registry(reg, None, tmp_path / "models") is False  # type: ignore[arg-type]
        assert reg.list_operators() == []
