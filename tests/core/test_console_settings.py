"""The console's settings file (:mod:`core.live.settings`): TOML round trip, defaults, every bad value
named with its key and file, private files written atomically, masked camera passwords, and decision
changes that need HR and are audited.  Real files and a real registry in tmp folders; no Qt."""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from core.errors import PermissionDenied
from core.live import settings as cs
from core.live.session import SettingsError, parse_sources
from core.live.settings import CameraConfig, ConsoleSettings, WindowState
from core.recognition.engine import Policy
from core.registry import Registry
from tests.conftest import HR_PASSPHRASE, make_hr

GOOD = "correct horse battery"
RTSP = "rtsp://admin:s3cr%40t@10.0.0.7:554/Streaming/Channels/101?pwd=hunter2&channel=1"


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads and writes its settings under its own tmp folder, never the user's."""
    folder = tmp_path / "config" / "facegate"
    monkeypatch.setenv(cs.CONFIG_DIR_ENV, str(folder))
    return folder


@pytest.fixture
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "data" / "facegate.db") as registry:
        yield registry


def full_settings() -> ConsoleSettings:
    return ConsoleSettings(
        cameras=(CameraConfig("north", RTSP), CameraConfig("door", "/srv/clips/door 1.avi"),
                 CameraConfig("desk", "0"), CameraConfig("demo", "demo"), CameraConfig("south", "http://cam/x.mjpg")),
        selected=("door", "north"),
        policy=Policy("stacker", 0.7, 0.05, 0.9), min_face=60, max_frame_age_s=0.5, open_timeout_s=3.0,
        read_timeout_s=7.5, data_dir=Path("/srv/facegate/data"),
        window=WindowState.from_bytes(b"\x01\xd9\xd0\xcb\x00\x03", b"\x00\x00\x00\xff", fullscreen=True))


def write(config_dir: Path, text: str) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / "console.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- round trip, defaults, location ---------------------------------------------------------------


def test_settings_round_trip_through_the_file(config_dir: Path):
    settings = full_settings()
    path = cs.save_settings(settings)
    assert path == config_dir / "console.toml" == cs.settings_path()
    assert cs.load_settings() == settings
    assert cs.load_settings().window.geometry_bytes == b"\x01\xd9\xd0\xcb\x00\x03"
    assert tomllib.loads(path.read_text(encoding="utf-8"))["policy"]["decider"] == "stacker"


def test_a_missing_file_gives_the_defaults_the_demo_camera(config_dir: Path):
    settings = cs.load_settings()
    assert settings == ConsoleSettings()
    assert [(c.name, c.spec) for c in settings.shown_cameras()] == [("demo", "demo")]
    assert settings.session_settings().sources == ("demo=demo",)
    assert not config_dir.exists()  # reading never creates anything


def test_the_defaults_round_trip_and_are_explained_in_the_file(config_dir: Path):
    path = cs.save_settings(ConsoleSettings())
    text = path.read_text(encoding="utf-8")
    assert "No [[cameras]]: the console runs the built-in demo camera" in text
    assert "# threshold = " in text and "min_probability = 0.5  # a number from 0 to 1" in text
    assert cs.load_settings() == ConsoleSettings()


@pytest.mark.parametrize("odd", ['quote " and back\\slash', "tab\there", "ctl \x01\x1b\x7f", "é ☃ 𝄞 日本",
                                 "C:\\Users\\guard\\clips", "trailing \\", "line\nbreak"])
def test_hostile_strings_survive_the_writer(odd: str):
    settings = ConsoleSettings(data_dir=Path(odd), cameras=(CameraConfig("cam", odd.replace("\n", " ")),))
    assert cs.settings_from_toml(cs.settings_to_toml(settings)) == settings


def test_session_settings_run_the_cameras_in_the_grid_with_the_policy():
    settings = full_settings()
    session = settings.session_settings(record_events=False)
    assert parse_sources(session.sources) == [("door", "/srv/clips/door 1.avi"), ("north", RTSP)]
    assert (session.policy, session.min_face, session.max_frame_age_s, session.open_timeout_s,
            session.read_timeout_s, session.data_dir, session.record_events) == (
        Policy("stacker", 0.7, 0.05, 0.9), 60, 0.5, 3.0, 7.5, Path("/srv/facegate/data"), False)
    unselected = replace(settings, selected=())
    assert [c.name for c in unselected.shown_cameras()] == ["north", "door", "desk", "demo"]  # the first four


# -- bad values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    ("[policy]\nmin_probability = 1.5\n", "[policy] min_probability must be a number from 0 to 1, got 1.5"),
    ("[policy]\nmin_probability = \"high\"\n", "[policy] min_probability must be a number from 0 to 1, got 'high'"),
    ("[policy]\nmin_margin = -0.1\n", "[policy] min_margin must be a number from 0 to 2, got -0.1"),
    ("[policy]\nthreshold = 0\n", "[policy] threshold must be a number above 0 and at most 2, got 0"),
    ("[policy]\nthreshold = nan\n", "[policy] threshold must be a number above 0 and at most 2, got nan"),
    ("[policy]\ndecider = \"best\"\n", "[policy] decider must be one of 'svc', 'stacker', 'super_learner', 'all'"),
    ("[policy]\nmin_face = 10\n", "[policy] min_face must be a whole number of pixels from 20 to 4096, got 10"),
    ("[policy]\nmin_face = 80.5\n", "[policy] min_face must be a whole number of pixels from 20 to 4096, got 80.5"),
    ("[policy]\nmin_face = true\n", "[policy] min_face must be a whole number of pixels from 20 to 4096, got true"),
    ("[live]\nopen_timeout_s = 0\n", "[live] open_timeout_s must be a number of seconds above 0, got 0"),
    ("[live]\nread_timeout_s = inf\n", "[live] read_timeout_s must be a number of seconds above 0, got inf"),
    ("[live]\nmax_frame_age_s = -1\n", "[live] max_frame_age_s must be a number of seconds above 0, got -1"),
    ("[live]\ndata_dir = 5\n", "[live] data_dir must be a folder path, got 5"),
    ("[[cameras]]\nname = \"2nd\"\nspec = \"0\"\n", "[[cameras]] #1 name must start with a letter"),
    ("[[cameras]]\nname = \"a\"\n", "[[cameras]] #1 spec must be text, got nothing"),
    ("[[cameras]]\nname = \"a\"\nspec = \"  \"\n", "[[cameras]] #1 (a) spec must name a camera"),
    ("[[cameras]]\nname = \"a\"\nspec = \"0\"\n[[cameras]]\nname = \"a\"\nspec = \"1\"\n",
     "[[cameras]] #2 name 'a' is used by another camera"),
    ("cameras = 3\n", "cameras must be a list of [[cameras]] tables, got 3"),
    ("selected = [\"gate\"]\n", "selected names 'gate', which is not a camera in [[cameras]]"),
    ("selected = \"demo\"\n", "selected must be a list of camera names, got 'demo'"),
    ("selected = [\"a\", \"b\", \"c\", \"d\", \"e\"]\n" + "".join(
        f"[[cameras]]\nname = \"{n}\"\nspec = \"{i}\"\n" for i, n in enumerate("abcde")),
     "selected may name at most 4 cameras, got 5"),
    ("[window]\ngeometry = \"not base64!\"\n", "[window] geometry must be base64 text"),
    ("[window]\nfullscreen = \"yes\"\n", "[window] fullscreen must be true or false, got 'yes'"),
    ("policy = 3\n", "policy must be a table ([policy]), got 3"),
    ("version = 2\n", "version 2 was written by a newer FaceGate"),
])
def test_each_bad_value_names_the_file_the_key_and_what_is_allowed(config_dir: Path, text: str, message: str):
    path = write(config_dir, text)
    with pytest.raises(SettingsError) as caught:
        cs.load_settings()
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unknown_keys_are_reported_not_ignored(config_dir: Path):
    write(config_dir, "colour = \"red\"\n[policy]\nmin_prob = 0.4\n[[cameras]]\nname = \"a\"\nspec = \"0\"\n"
                      "password = \"x\"\n[extras]\n")
    with pytest.raises(SettingsError) as caught:
        cs.load_settings()
    text = str(caught.value)
    assert "console.toml" in text
    for key in ("unknown key colour", "unknown key [policy] min_prob (known here: decider, min_probability",
                "unknown key [[cameras]] #1 password", "unknown key extras"):
        assert key in text


def test_several_problems_are_reported_together(config_dir: Path):
    write(config_dir, "[policy]\nmin_probability = 2\nmin_margin = 3\n")
    with pytest.raises(SettingsError, match=r"min_probability .*; \[policy\] min_margin"):
        cs.load_settings()


def test_a_syntax_error_names_the_line(config_dir: Path):
    path = write(config_dir, "version = 1\n\n[policy]\nmin_probability 0.5\n")
    with pytest.raises(SettingsError) as caught:
        cs.load_settings()
    assert str(caught.value).startswith(f"{path} is not valid TOML")
    assert "line 4" in str(caught.value)


def test_a_file_that_is_not_text_is_a_clear_error(config_dir: Path):
    (config_dir).mkdir(parents=True)
    (config_dir / "console.toml").write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(SettingsError, match="not UTF-8 text"):
        cs.load_settings()


def test_bad_values_in_code_are_refused_too():
    with pytest.raises(SettingsError, match=r"\[policy\] min_face must be a whole number"):
        ConsoleSettings(min_face=5000)
    with pytest.raises(SettingsError, match="selected names 'north'"):
        ConsoleSettings(selected=("north",))  # only the demo camera exists
    with pytest.raises(SettingsError, match="spec must be one line"):
        ConsoleSettings(cameras=(CameraConfig("a", "rtsp://h/x\n[policy]"),))


# -- files: private, atomic ----------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_file_is_private_and_its_new_folder_too(config_dir: Path):
    path = cs.save_settings(full_settings())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    cs.save_settings(ConsoleSettings())  # rewriting keeps it private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in config_dir.iterdir()] == ["console.toml"]  # no temp file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_file_readable_by_others_is_made_private_when_read(config_dir: Path):
    path = cs.save_settings(full_settings())
    path.chmod(0o644)
    assert cs.load_settings() == full_settings()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file(config_dir: Path, monkeypatch: pytest.MonkeyPatch):
    path = cs.save_settings(full_settings())

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cs.os, "replace", disk_full)
    with pytest.raises(SettingsError, match="Cannot write the console settings .*No space left"):
        cs.save_settings(ConsoleSettings())
    monkeypatch.undo()
    assert cs.load_settings(path) == full_settings()
    assert [p.name for p in config_dir.iterdir()] == ["console.toml"]


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cs.CONFIG_DIR_ENV, str(blocker / "facegate"))
    with pytest.raises(SettingsError, match=r"Cannot write the console settings in .*FACEGATE_CONFIG_DIR"):
        cs.save_settings(ConsoleSettings())


# -- camera passwords ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "shown"), [
    (RTSP, "rtsp://admin:***@10.0.0.7:554/Streaming/Channels/101?pwd=***&channel=1"),
    ("http://cam.local/video.mjpg?user=admin&password=pa55&res=hd", "http://cam.local/video.mjpg?user=admin&password=***&res=hd"),
    ("rtsp://10.0.0.9/user=admin&password=pa55&channel=1&stream=0.sdp",
     "rtsp://10.0.0.9/user=admin&password=***&channel=1&stream=0.sdp"),
    ("https://h/s?pass=1&token=2&key=3&api_key=4&access_token=5&Passwd=6&x=7",
     "https://h/s?pass=***&token=***&key=***&api_key=***&access_token=***&Passwd=***&x=7"),
    ("rtsp://admin:p@ss:w0rd@Cam-7:99999/x", "rtsp://admin:***@Cam-7:99999/x"),  # '@' in it, a bad port
    ("rtsp://viewer@10.0.0.7/live", "rtsp://viewer@10.0.0.7/live"),
    ("/srv/clips/pwd=1.avi", "/srv/clips/pwd=1.avi"), ("0", "0"), ("demo", "demo"),
])
def test_display_spec_masks_user_info_and_password_like_parameters(spec: str, shown: str):
    assert cs.display_spec(spec) == shown
    assert "hunter2" not in repr(CameraConfig("n", RTSP)) and "s3cr" not in repr(full_settings())


def test_editing_an_address_keeps_the_stored_password_when_the_field_is_left_empty():
    editable = cs.editable_spec(RTSP)
    assert editable == "rtsp://admin@10.0.0.7:554/Streaming/Channels/101?pwd=***&channel=1"
    assert cs.restore_secrets(editable, RTSP) == RTSP  # untouched: nothing lost
    moved = editable.replace("10.0.0.7", "10.0.0.8").replace("channel=1", "channel=2")
    assert cs.restore_secrets(moved, RTSP) == RTSP.replace("10.0.0.7", "10.0.0.8").replace("channel=1", "channel=2")
    # a new password from the field, percent-encoded
    assert cs.restore_secrets(editable, RTSP, "n3w p@ss") == RTSP.replace("s3cr%40t", "n3w%20p%40ss")
    # another user does not inherit the stored password
    assert cs.restore_secrets(editable.replace("admin@", "viewer@"), RTSP).startswith("rtsp://viewer@10.0.0.7")
    # typed in the address itself: taken as typed
    assert cs.restore_secrets("rtsp://admin:typed@h/x", RTSP) == "rtsp://admin:typed@h/x"


@pytest.mark.parametrize(("edited", "stored", "password", "message"), [
    ("rtsp://h/x", None, "pw", "put the user name in the address"),
    ("rtsp://admin:***@h/x", None, "", "password that is not stored"),
    ("http://h/x?token=***", "http://h/x", "", "no token is stored"),
    ("/srv/clip.avi", None, "pw", "Only a camera address"),
])
def test_restore_secrets_refuses_what_it_cannot_fill_in(edited: str, stored: str | None, password: str,
                                                          message: str):
    with pytest.raises(SettingsError, match=message):
        cs.restore_secrets(edited, stored, password)


def test_the_password_is_stored_in_the_file(config_dir: Path):
    path = cs.save_settings(full_settings())
    assert "s3cr%40t" in path.read_text(encoding="utf-8") and "hunter2" in path.read_text(encoding="utf-8")


# -- decision changes: HR, audited ---------------------------------------------------------------------


def stricter(settings: ConsoleSettings) -> ConsoleSettings:
    return replace(settings, policy=replace(settings.policy, min_probability=0.8, threshold=0.85), min_face=100)


def policy_rows(reg: Registry) -> list:
    return reg.audit_log(action=cs.POLICY_AUDIT_ACTION)


def test_a_decision_change_with_an_hr_login_is_signed_into_the_registry_and_audited(config_dir: Path,
                                                                                    reg: Registry):
    from core.registry.decision import decision_settings
    from core.registry.signing import verify_state

    make_hr(reg)
    old = full_settings()
    cs.save_settings(old)
    new = stricter(old)
    asked = []
    actor = cs.apply_policy_change(reg, old, new, credentials=lambda: asked.append(1) or (None, HR_PASSPHRASE))
    assert actor == "admin:hr.lead" and asked == [1]
    assert cs.load_settings() == new  # the display copy
    assert decision_settings(reg) == (new.policy, 100)  # what the console decides with
    [row] = policy_rows(reg)
    assert (row.actor, row.object) == ("admin:hr.lead", "decision")
    assert row.new == {"decider": "stacker", "min_probability": 0.8, "min_margin": 0.05, "threshold": 0.85,
                       "min_face": 100}
    assert reg.verify() == [] and verify_state(reg).ok
    # console.toml edited by the guard's account changes nothing the console decides with.
    cs.save_settings(replace(new, policy=replace(new.policy, threshold=1.9), min_face=20))
    assert cs.with_signed_decision(cs.load_settings(), reg).policy.threshold == 0.85


def test_a_wrong_passphrase_saves_nothing_and_the_refusal_is_audited(config_dir: Path, reg: Registry):
    from core.registry.decision import decision_settings

    make_hr(reg)
    old = full_settings()
    cs.save_settings(old)
    with pytest.raises(PermissionDenied, match="Wrong passphrase"):
        cs.apply_policy_change(reg, old, stricter(old), credentials=lambda: (None, "wrong horse battery"))
    assert cs.load_settings() == old and decision_settings(reg) is None
    assert policy_rows(reg) == []
    [denied] = reg.audit_log(action="hr_denied")
    assert denied.actor == "login:hr.lead" and "min_probability 0.7 -> 0.8" in denied.object


def test_no_accounts_means_no_decision_change_from_the_console(config_dir: Path, reg: Registry):
    old = ConsoleSettings()
    with pytest.raises(PermissionDenied, match="no HR accounts yet"):
        cs.apply_policy_change(reg, old, stricter(old), credentials=lambda: (None, GOOD))
    assert not cs.settings_path().exists()


def test_camera_changes_need_no_login(config_dir: Path, reg: Registry):
    old = full_settings()
    new = replace(old, cameras=old.cameras[:2], selected=("north",), window=WindowState())

    def never() -> tuple[str | None, str]:
        raise AssertionError("camera changes must not ask for an HR login")

    cs.apply_policy_change(reg, old, new, credentials=never)
    assert cs.load_settings() == new and policy_rows(reg) == []


def test_a_failed_write_of_the_display_copy_keeps_the_signed_change(config_dir: Path, reg: Registry,
                                                                      monkeypatch: pytest.MonkeyPatch):
    from core.registry.decision import decision_settings

    make_hr(reg)
    old = ConsoleSettings()

    def fail(settings: ConsoleSettings, path: object = None) -> Path:
        raise SettingsError("Cannot write the console settings: disk full.")

    monkeypatch.setattr(cs, "save_settings", fail)
    cs.apply_policy_change(reg, old, stricter(old), credentials=lambda: (None, HR_PASSPHRASE))
    assert len(policy_rows(reg)) == 1 and decision_settings(reg) is not None and reg.verify() == []


def test_mask_text_masks_every_address_in_a_status_line():
    line = ("north failed: stream rtsp://admin:***@10.0.0.7/s?pwd=hunter2&channel=1 could not be opened; "
            "also 'http://h/v.mjpg?token=abc'.")
    assert cs.mask_text(line) == ("north failed: stream rtsp://admin:***@10.0.0.7/s?pwd=***&channel=1 could not "
                                  "be opened; also 'http://h/v.mjpg?token=***'.")


def test_saving_the_window_layout_keeps_a_decision_saved_meanwhile(config_dir: Path, reg: Registry):
    make_hr(reg)
    at_start = full_settings()  # what the main window read at start
    cs.save_settings(at_start)
    hr_saved = stricter(at_start)
    cs.apply_policy_change(reg, at_start, hr_saved, credentials=lambda: (None, HR_PASSPHRASE))
    layout = WindowState.from_bytes(b"new geometry", b"new state")
    assert cs.save_window(layout) == replace(hr_saved, window=layout) == cs.load_settings()
