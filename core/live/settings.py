"""The guard console's settings: cameras, the decision policy, window layout — in ``console.toml``.

The file is in ``$FACEGATE_CONFIG_DIR``, else ``platformdirs.user_config_dir("facegate")``
(``~/.config/facegate/`` on Linux); a missing file gives the defaults (the demo camera).  It is written
atomically and readable by its owner only (it holds camera passwords).  A bad value or an unknown key is
a :class:`~core.live.session.SettingsError` naming the file, the key and what is allowed
(``console.toml: [policy] min_probability must be a number from 0 to 1, got 1.5``).

Passwords in camera addresses are stored but never shown: :func:`display_spec` and :func:`mask_text`
mask them (user-info and parameters such as ``?pwd=…``), :func:`editable_spec` is what an editor shows,
and :func:`restore_secrets` puts back the stored password the user did not retype.

Changing the decision (decider, probability floor, margin, threshold, minimum face size) changes who is
let in: :func:`apply_policy_change` stores it in the registry, signed by HR after an HR login, and
audited; the ``[policy]`` table of ``console.toml`` only mirrors it for display (the guard's account can
edit this file, so the console never decides with it).  Cameras and the window layout need no login.

The writer is a small serialiser for this one fixed schema rather than a TOML library: it writes the
allowed values as comments beside the keys, which a general writer cannot, and it needs no extra
dependency.  ``tomllib`` reads the result (the tests round-trip hostile strings through it).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from core.live.session import SessionSettings, SettingsError
from core.live.sources.addresses import (
    _PARAM,
    MASK,
    _Address,
    _is_secret_param,
    _mask_params,
    display_spec,
    mask_text,
)
from core.recognition.engine import POLICIES, Policy

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "CONFIG_DIR_ENV", "MAX_SHOWN", "POLICY_AUDIT_ACTION", "CameraConfig", "ConsoleSettings", "WindowState",
    "apply_policy_change", "cameras_to_approve", "config_dir", "decision_changed", "decision_record", "display_spec", "editable_spec",
    "load_settings", "mask_text", "restore_secrets", "save_settings", "save_window", "settings_from_toml",
    "settings_path", "settings_to_toml", "with_signed_decision",
]

CONFIG_DIR_ENV = "FACEGATE_CONFIG_DIR"
"""Environment variable that moves the settings folder (tests, kiosks, several consoles on one account)."""
FILE_NAME = "console.toml"
SCHEMA_VERSION = 1
MAX_SHOWN = 4
"""The grid shows (and the session runs) at most this many cameras."""
POLICY_AUDIT_ACTION = "set_policy"
"""The audit action of a decision change made in the console."""
DEMO_CAMERA_SPEC = "demo"

CAMERA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
"""A camera name: what ``facegate monitor --source NAME=SPEC`` accepts as NAME."""


# -- the dataclasses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConfig:
    """One configured camera: a ``name`` (``north``) and the ``spec`` ``facegate monitor --source`` takes
    (``demo``, ``0``, ``rtsp://user:pass@host/…``, a video file, a folder of pictures).

    ``spec`` holds the password in clear: show :attr:`shown_spec` instead.
    """

    name: str
    spec: str

    @property
    def shown_spec(self) -> str:
        """The spec with every password masked (:func:`display_spec`)."""
        return display_spec(self.spec)

    def __repr__(self) -> str:  # a repr in a log or a traceback must not carry the password either
        return f"CameraConfig(name={self.name!r}, spec={self.shown_spec!r})"


@dataclass(frozen=True)
class WindowState:
    """The main window's layout, opaque to the core: ``geometry`` and ``state`` are base64 of Qt's
    ``saveGeometry()`` / ``saveState()``; empty means "not saved yet"."""

    geometry: str = ""
    state: str = ""
    fullscreen: bool = False

    @classmethod
    def from_bytes(cls, geometry: bytes, state: bytes, fullscreen: bool = False) -> WindowState:
        return cls(base64.b64encode(geometry).decode("ascii"), base64.b64encode(state).decode("ascii"),
                   fullscreen)

    @property
    def geometry_bytes(self) -> bytes:
        return base64.b64decode(self.geometry)

    @property
    def state_bytes(self) -> bytes:
        return base64.b64decode(self.state)


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything the console remembers between runs.

    Attributes
    ----------
    cameras
        The configured cameras; empty means the built-in demo camera.
    selected
        Names of the cameras shown in the grid (and run), at most :data:`MAX_SHOWN`, in grid order;
        empty means the first four.
    policy
        The decision policy (decider, probability floor, margin, threshold override).
    min_face
        Smallest face to look for, 20 to 4096 pixels.
    max_frame_age_s, open_timeout_s, read_timeout_s
        As ``facegate monitor``'s ``--max-frame-age``, ``--open-timeout``, ``--read-timeout``.
    data_dir
        The registry folder; ``None``: ``$FACEGATE_DATA_DIR`` or the user data folder.
    window
        The main window's layout.

    Raises
    ------
    SettingsError
        For a bad value (the message names the key as it is written in ``console.toml``).
    """

    cameras: tuple[CameraConfig, ...] = ()
    selected: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    min_face: int = 80
    max_frame_age_s: float = 1.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    data_dir: Path | None = None
    window: WindowState = field(default_factory=WindowState)

    def __post_init__(self) -> None:
        problems = _structure_problems(self)
        if problems:
            raise SettingsError("; ".join(problems))

    def effective_cameras(self) -> tuple[CameraConfig, ...]:
        """The configured cameras, or the demo camera when there are none."""
        return self.cameras or (CameraConfig(DEMO_CAMERA_SPEC, DEMO_CAMERA_SPEC),)

    def shown_cameras(self) -> tuple[CameraConfig, ...]:
        """The cameras in the grid, in grid order: the selected ones, else the first four."""
        cameras = self.effective_cameras()
        if not self.selected:
            return cameras[:MAX_SHOWN]
        by_name = {c.name: c for c in cameras}
        return tuple(by_name[name] for name in self.selected)

    def session_settings(self, **overrides: Any) -> SessionSettings:
        """What the live session runs: the cameras shown in the grid, the policy, the limits.

        ``overrides`` are passed on to :class:`~core.live.session.SessionSettings` (tests, benchmarks:
        ``record_events=False``).
        """
        values: dict[str, Any] = {
            "sources": tuple(f"{c.name}={c.spec}" for c in self.shown_cameras()), "data_dir": self.data_dir,
            "policy": self.policy, "min_face": self.min_face, "max_frame_age_s": self.max_frame_age_s,
            "open_timeout_s": self.open_timeout_s, "read_timeout_s": self.read_timeout_s}
        values.update(overrides)
        return SessionSettings(**values)


# -- value checks (one table for the loader and the dataclass) ---------------------------------------------


@dataclass(frozen=True)
class _Range:
    lo: float
    hi: float = math.inf
    lo_open: bool = False
    integer: bool = False
    unit: str = ""

    def allowed(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        lo, hi = _fmt(self.lo), _fmt(self.hi)
        if self.hi == math.inf:
            return f"{kind}{self.unit} above {lo}"
        if self.lo_open:
            return f"{kind}{self.unit} above {lo} and at most {hi}"
        return f"{kind}{self.unit} from {lo} to {hi}"

    def problem(self, label: str, value: Any) -> str | None:
        ok_type = isinstance(value, int) if self.integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            return f"{label} must be {self.allowed()}, got {_shown(value)}"
        ok = (math.isfinite(value) and (value > self.lo if self.lo_open else value >= self.lo)
              and value <= self.hi)
        return None if ok else f"{label} must be {self.allowed()}, got {_shown(value)}"


_SECONDS = _Range(0, lo_open=True, unit=" of seconds")
_RANGES: dict[tuple[str, str], _Range] = {
    ("policy", "min_probability"): _Range(0, 1),
    ("policy", "min_margin"): _Range(0, 2),
    ("policy", "threshold"): _Range(0, 2, lo_open=True),
    ("policy", "min_face"): _Range(20, 4096, integer=True, unit=" of pixels"),
    ("live", "max_frame_age_s"): _SECONDS,
    ("live", "open_timeout_s"): _SECONDS,
    ("live", "read_timeout_s"): _SECONDS,
}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "a table" if isinstance(value, dict) else "a list" if isinstance(value, list) else str(value)


def _structure_problems(s: ConsoleSettings) -> list[str]:
    problems: list[str] = []
    for (section, key), rng in _RANGES.items():
        value = getattr(s.policy if hasattr(s.policy, key) else s, key)
        if value is not None and (p := rng.problem(f"[{section}] {key}", value)):
            problems.append(p)
    names: list[str] = []
    for i, camera in enumerate(s.cameras, 1):
        label = f"[[cameras]] #{i}"
        if not isinstance(camera.name, str) or not CAMERA_NAME.match(camera.name):
            problems.append(f"{label} name must start with a letter and hold only letters, digits, '-' and "
                            f"'_' (at most 32), got {_shown(camera.name)}")
        elif camera.name in names:
            problems.append(f"{label} name {camera.name!r} is used by another camera: give each its own")
        names.append(camera.name)
        if not isinstance(camera.spec, str) or not camera.spec.strip():
            problems.append(f"{label} ({camera.name}) spec must name a camera: demo, a webcam number, a "
                            "stream URL, a video file or a folder of pictures")
        elif any(ch in camera.spec for ch in "\r\n\0"):
            problems.append(f"{label} ({camera.name}) spec must be one line")
    valid = set(names) if s.cameras else {DEMO_CAMERA_SPEC}
    if len(s.selected) > MAX_SHOWN:
        problems.append(f"selected may name at most {MAX_SHOWN} cameras, got {len(s.selected)}")
    if len(set(s.selected)) != len(s.selected):
        problems.append("selected names a camera twice")
    for name in s.selected:
        if name not in valid:
            problems.append(f"selected names {_shown(name)}, which is not a camera in [[cameras]]")
    for key in ("geometry", "state"):
        if not _is_base64(getattr(s.window, key)):
            problems.append(f"[window] {key} must be base64 text (as the console writes it)")
    if not isinstance(s.window.fullscreen, bool):
        problems.append(f"[window] fullscreen must be true or false, got {_shown(s.window.fullscreen)}")
    return problems


def _is_base64(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# -- camera passwords --------------------------------------------------------------------------------------


def editable_spec(spec: str) -> str:
    """The spec as an editor shows it: the user-info password left out (the editor has its own
    password field), password-like parameters as ``***``.  :func:`restore_secrets` undoes both."""
    address = _Address.parse(spec)
    if address is None:
        return spec
    return _Address(address.scheme, address.user, None, address.host, _mask_params(address.rest)).text(None)


def restore_secrets(edited: str, stored: str | None, password: str = "") -> str:
    """The spec to store after an edit: the stored secrets put back where the user did not retype them.

    ``edited`` is the address as the user left it (typically :func:`editable_spec` of ``stored``,
    changed), ``stored`` the spec before the edit (``None`` for a new camera), ``password`` what the
    user typed in the password field.  The result is ``edited`` with ``password`` (percent-encoded) as
    its user-info password if given, else the stored password when the address names the same user
    without one (or with ``***``); and each ``name=***`` parameter gets its stored value back.

    Raises
    ------
    SettingsError
        If a password is given for an address with no user name, or a ``***`` has no stored value to
        stand for.
    """
    edited = edited.strip()
    address = _Address.parse(edited)
    if address is None:
        if password:
            raise SettingsError("Only a camera address (rtsp://, http://) can have a password.")
        return edited
    old = _Address.parse(stored) if stored else None
    new_password = address.password
    if password:
        if not address.user:
            raise SettingsError("To use a password, put the user name in the address: rtsp://USER@host/…")
        new_password = quote(password, safe="")
    elif address.user is not None and new_password in (None, MASK):
        if old is not None and old.password is not None and old.user == address.user:
            new_password = old.password
        elif new_password == MASK:
            raise SettingsError("The address shows *** for a password that is not stored: type the password "
                                "in the password field.")
    old_params = old.params() if old is not None else {}

    def put_back(m: re.Match[str]) -> str:
        if m["value"] != MASK or not _is_secret_param(m["key"]):
            return m.group(0)
        if m["key"] not in old_params:
            raise SettingsError(f"The address shows {m['key']}=*** but no {m['key']} is stored: type its value.")
        return f"{m['lead']}{m['key']}={old_params[m['key']]}"

    rest = _PARAM.sub(put_back, address.rest)
    return _Address(address.scheme, address.user, new_password, address.host, rest).text(new_password)


# -- reading and writing -----------------------------------------------------------------------------------


def config_dir() -> Path:
    """The settings folder: ``$FACEGATE_CONFIG_DIR``, else ``platformdirs.user_config_dir("facegate")``
    (not created here)."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("facegate", appauthor=False))


def settings_path() -> Path:
    """Where the console's settings are: ``config_dir() / "console.toml"``."""
    return config_dir() / FILE_NAME


_SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("version", "selected", "policy", "live", "cameras", "window"),
    "policy": ("decider", "min_probability", "min_margin", "threshold", "min_face"),
    "live": ("max_frame_age_s", "open_timeout_s", "read_timeout_s", "data_dir"),
    "cameras": ("name", "spec"),
    "window": ("geometry", "state", "fullscreen"),
}


def load_settings(path: Path | str | None = None) -> ConsoleSettings:
    """Read the console's settings; the defaults (the demo camera) if the file does not exist.

    A file readable by others is made private (it holds camera passwords), with a warning in the log.

    Raises
    ------
    SettingsError
        If the file cannot be read, is not valid TOML (the message names the line), holds an unknown
        key or a bad value (the message names the file, the key and what is allowed).
    """
    path = Path(path) if path is not None else settings_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ConsoleSettings()
    except OSError as exc:
        raise SettingsError(f"Cannot read the console settings {path}: {exc.strerror or exc}.") from exc
    _make_private(path)
    return settings_from_toml(data, path)


def _make_private(path: Path) -> None:
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); it holds camera passwords: made private (0600)",
                        path, mode)
            path.chmod(0o600)
    except OSError as exc:
        log.warning("%s: could not make it private: %s", path, exc.strerror or exc)


def settings_from_toml(data: bytes | str, path: Path | str = FILE_NAME) -> ConsoleSettings:
    """Parse the text of a ``console.toml``; ``path`` names the file in error messages.

    Raises
    ------
    SettingsError
        As :func:`load_settings`.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start}); was it saved by another program?") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}. Fix that line, or move the file away to start "
                            "from the defaults.") from exc
    reader = _Reader()
    settings = reader.read(doc)
    if reader.problems:
        raise SettingsError(f"{path}: " + "; ".join(reader.problems))
    assert settings is not None
    return settings


class _Reader:
    """Checks a parsed document key by key, collecting every problem with its key."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def read(self, doc: dict[str, Any]) -> ConsoleSettings | None:
        self._unknown(doc, "", "")
        version = doc.get("version", SCHEMA_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.problems.append(f"version must be {SCHEMA_VERSION}, got {_shown(version)}")
        elif version > SCHEMA_VERSION:
            self.problems.append(f"version {version} was written by a newer FaceGate (this one reads "
                                 f"version {SCHEMA_VERSION}); update FaceGate")
        policy = self._table(doc, "policy")
        live = self._table(doc, "live")
        window = self._table(doc, "window")
        decider = policy.get("decider", "all")
        if decider not in POLICIES:
            self.problems.append(f"[policy] decider must be one of {', '.join(repr(p) for p in POLICIES)}, "
                                 f"got {_shown(decider)}")
            decider = "all"
        base, tables = ConsoleSettings(), {"policy": policy, "live": live}
        numbers = {key: self._number(tables[section], section, key,
                                     getattr(base.policy if hasattr(base.policy, key) else base, key))
                   for section, key in _RANGES}
        data_dir = live.get("data_dir")
        if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.strip()):
            self.problems.append(f"[live] data_dir must be a folder path, got {_shown(data_dir)}")
            data_dir = None
        cameras = self._cameras(doc.get("cameras", []))
        selected = doc.get("selected", [])
        if not isinstance(selected, list) or not all(isinstance(n, str) for n in selected):
            self.problems.append(f"selected must be a list of camera names, got {_shown(selected)}")
            selected = []
        fullscreen = window.get("fullscreen", False)
        strings = {key: window.get(key, "") for key in ("geometry", "state")}
        if self.problems:
            return None
        try:
            return ConsoleSettings(
                cameras=tuple(cameras), selected=tuple(selected),
                policy=Policy(decider, numbers["min_probability"], numbers["min_margin"], numbers["threshold"]),
                min_face=numbers["min_face"], max_frame_age_s=numbers["max_frame_age_s"],
                open_timeout_s=numbers["open_timeout_s"], read_timeout_s=numbers["read_timeout_s"],
                data_dir=Path(data_dir).expanduser() if data_dir else None,
                window=WindowState(strings["geometry"], strings["state"], fullscreen))
        except SettingsError as exc:
            self.problems.append(str(exc))
            return None

    def _unknown(self, table: Mapping[str, Any], section: str, label: str) -> None:
        known = _SCHEMA[section]
        for key in table:
            if key not in known:
                where = f"{label} " if label else ""
                self.problems.append(f"unknown key {where}{key} (known here: {', '.join(known)})")

    def _table(self, doc: dict[str, Any], section: str) -> dict[str, Any]:
        table = doc.get(section, {})
        if not isinstance(table, dict):
            self.problems.append(f"{section} must be a table ([{section}]), got {_shown(table)}")
            return {}
        self._unknown(table, section, f"[{section}]")
        return table

    def _number(self, table: dict[str, Any], section: str, key: str, default: Any) -> Any:
        value = table.get(key, default)
        problem = None if value is None else _RANGES[section, key].problem(f"[{section}] {key}", value)
        if problem:
            self.problems.append(problem)
            return default
        return float(value) if isinstance(value, int) and not _RANGES[section, key].integer else value

    def _cameras(self, entries: Any) -> list[CameraConfig]:
        if not isinstance(entries, list):
            self.problems.append(f"cameras must be a list of [[cameras]] tables, got {_shown(entries)}")
            return []
        out = []
        for i, entry in enumerate(entries, 1):
            label = f"[[cameras]] #{i}"
            if not isinstance(entry, dict):
                self.problems.append(f"{label} must be a table with name and spec, got {_shown(entry)}")
                continue
            self._unknown(entry, "cameras", label)
            name, spec = entry.get("name"), entry.get("spec")
            for key, value in (("name", name), ("spec", spec)):
                if not isinstance(value, str):
                    self.problems.append(f"{label} {key} must be text, got "
                                         f"{'nothing' if value is None else _shown(value)}")
            if isinstance(name, str) and isinstance(spec, str):
                out.append(CameraConfig(name, spec))
        return out


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
            **{chr(c): f"\\u{c:04x}" for c in (*range(0x20), 0x7F) if chr(c) not in "\b\t\n\f\r"}}


def _toml_string(text: str) -> str:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):  # a file name that is not UTF-8 (surrogate escape)
        raise SettingsError(f"{text!r} cannot be stored: it is not valid Unicode text (rename the file).")
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in text) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SettingsError(f"{value} cannot be stored in the settings file.")
        return repr(value)  # shortest round-trip form; '0.5', '1e-05': both TOML floats
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def settings_to_toml(settings: ConsoleSettings) -> str:
    """The text of ``console.toml`` for ``settings`` (commented with what each key allows)."""
    p = settings.policy
    lines = [
        "# FaceGate console settings, written by the console (Settings). Comments added here are not kept.",
        "# This file holds camera passwords: keep it private (the console writes it readable by you only).",
        "# [policy] decides who is let in: change it in the console, which asks for the HR passphrase and",
        "# records the change in the audit log.",
        f"version = {SCHEMA_VERSION}",
        f"selected = {_toml_value(list(settings.selected))}  # the cameras in the grid, at most {MAX_SHOWN}",
        "",
        "[policy]",
        f"decider = {_toml_value(p.decider)}  # {' | '.join(POLICIES)}",
        f"min_probability = {_toml_value(float(p.min_probability))}  # {_RANGES['policy', 'min_probability'].allowed()}",
        f"min_margin = {_toml_value(float(p.min_margin))}  # {_RANGES['policy', 'min_margin'].allowed()}",
        (f"threshold = {_toml_value(float(p.threshold))}  # {_RANGES['policy', 'threshold'].allowed()}; "
         "remove the line to use the calibrated one") if p.threshold is not None else
        "# threshold = 0.95  # overrides the calibrated distance threshold (above 0, at most 2)",
        f"min_face = {_toml_value(int(settings.min_face))}  # {_RANGES['policy', 'min_face'].allowed()}",
        "",
        "[live]",
        f"max_frame_age_s = {_toml_value(float(settings.max_frame_age_s))}  # never decide on an older frame",
        f"open_timeout_s = {_toml_value(float(settings.open_timeout_s))}  # a network camera's time to open",
        f"read_timeout_s = {_toml_value(float(settings.read_timeout_s))}  # its time to deliver the next frame",
        (f"data_dir = {_toml_value(str(settings.data_dir))}" if settings.data_dir is not None else
         "# data_dir = \"/path/to/registry\"  # default: $FACEGATE_DATA_DIR, else the user data folder"),
    ]
    if not settings.cameras:
        lines += ["", "# No [[cameras]]: the console runs the built-in demo camera. Add one like this:",
                  "# [[cameras]]", "# name = \"north\"", "# spec = \"rtsp://user:password@10.0.0.7/stream1\""]
    for camera in settings.cameras:
        lines += ["", "[[cameras]]", f"name = {_toml_value(camera.name)}", f"spec = {_toml_value(camera.spec)}"]
    w = settings.window
    lines += ["", "[window]  # the main window's layout, as Qt saved it",
              f"geometry = {_toml_value(w.geometry)}", f"state = {_toml_value(w.state)}",
              f"fullscreen = {_toml_value(bool(w.fullscreen))}", ""]
    return "\n".join(lines)


def save_settings(settings: ConsoleSettings, path: Path | str | None = None) -> Path:
    """Write the settings atomically (temp file + rename), readable by the owner only (0600); a missing
    folder is created private (0700).  Returns the file's path.  This writes the decision too: change
    it with :func:`apply_policy_change`, and the layout alone with :func:`save_window`.

    Raises
    ------
    SettingsError
        If the folder or the file cannot be written (nothing is changed then).
    """
    path = Path(path) if path is not None else settings_path()
    text = settings_to_toml(settings)
    folder = path.parent
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)  # mkdir's mode is filtered through the umask
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    except OSError as exc:
        raise SettingsError(f"Cannot write the console settings in {folder}: {exc.strerror or exc}. Point "
                            f"${CONFIG_DIR_ENV} at a folder you may write to.") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SettingsError(f"Cannot write the console settings {path}: {exc.strerror or exc}.") from exc
    return path


def save_window(window: WindowState, path: Path | str | None = None) -> ConsoleSettings:
    """Remember the main window's layout: only ``[window]`` changes, everything else is kept as the file
    has it — so a window holding older settings can never undo a decision HR saved meanwhile."""
    current = replace(load_settings(path), window=window)
    save_settings(current, path)
    return current


# -- decision changes: HR only, audited --------------------------------------------------------------------


def decision_record(settings: ConsoleSettings) -> dict[str, Any]:
    """The part of the settings that decides who is let in, as recorded in the audit log."""
    p = settings.policy
    return {"decider": p.decider, "min_probability": p.min_probability, "min_margin": p.min_margin,
            "threshold": p.threshold, "min_face": settings.min_face}


def decision_changed(old: ConsoleSettings, new: ConsoleSettings) -> bool:
    """Whether saving ``new`` over ``old`` changes the decision (and so needs HR)."""
    return decision_record(old) != decision_record(new)


def cameras_to_approve(registry: Registry, settings: ConsoleSettings) -> list[str]:
    """The cameras of ``settings`` HR has not approved yet (``NAME=SPEC``); always empty while the registry has
    no HR accounts (nothing is approved or signed then)."""
    from core.registry.accounts import has_accounts
    from core.registry.decision import approved_cameras

    if not has_accounts(registry):
        return []
    approved = {e.partition("=")[2].strip() for e in approved_cameras(registry) or []}
    return [f"{c.name}={c.spec}" for c in settings.effective_cameras() if c.spec.strip() not in approved]


def apply_policy_change(registry: Registry, old: ConsoleSettings, new: ConsoleSettings, *,
                        credentials: Callable[[], tuple[str | None, str]],
                        path: Path | str | None = None) -> str:
    """Save ``new`` in place of ``old``; a change of who is let in only with an HR login, signed and audited.

    Two kinds of change need HR, once the registry has HR accounts:

    * the decision (decider, probability floor, margin, threshold, minimum face size): stored in the
      registry, signed (:func:`core.registry.decision.set_decision_settings`, audited as ``set_policy``);
    * a camera HR has not approved (:func:`cameras_to_approve`): every camera of ``new`` becomes the
      approved list (:func:`core.registry.decision.set_approved_cameras`, audited as ``approve_cameras``
      with passwords masked).  A live session runs only approved cameras, so a guard's account cannot swap
      the gate camera for a video of an enrolled person.

    The login is :func:`core.registry.security.authorize_hr` (a refusal is audited there, with the delay and
    the lockout).  ``console.toml`` keeps a display copy of the decision: the console decides with the
    signed settings whatever the file says.  Other changes (removing a camera, the grid, the layout) are
    saved without asking.

    Parameters
    ----------
    registry
        The open registry whose accounts, settings and audit log are used.
    old, new
        The settings in force and the settings to save.
    credentials
        Asks for ``(account or None, passphrase)`` (a dialog, a prompt); may raise to cancel.
    path
        The settings file (default :func:`settings_path`).

    Returns
    -------
    str
        The actor recorded (``"hr:alice"``), or ``""`` when no login was needed.

    Raises
    ------
    PermissionDenied
        If the login is refused, or a decision change is asked of a registry with no HR accounts (nothing
        is saved).
    SettingsError
        If the file cannot be written for a change that needs no login (nothing is saved).  After a
        login the signed settings are in force even if the file's copy could not be updated.
    """
    decision = decision_changed(old, new)
    cameras = cameras_to_approve(registry, new)
    if not decision and not cameras:
        save_settings(new, path)
        return ""
    from core.registry.decision import set_approved_cameras, set_decision_settings
    from core.registry.security import authorize_hr

    what = []
    if decision:
        before, after = decision_record(old), decision_record(new)
        what.append("change the decision settings (" + ", ".join(
            f"{key} {before[key]} -> {after[key]}" for key in before if before[key] != after[key]) + ")")
    if cameras:
        what.append("approve cameras " + ", ".join(mask_text(c) for c in cameras))
    session = authorize_hr(registry, credentials, action="; ".join(what))
    if decision:
        set_decision_settings(registry, session, new.policy, new.min_face)
    if cameras:
        listed = new.effective_cameras()
        set_approved_cameras(registry, session, [f"{c.name}={c.spec}" for c in listed],
                             [f"{c.name}={c.shown_spec}" for c in listed])
    try:
        save_settings(new, path)
    except SettingsError as exc:  # the signed settings are in force; the file is only their display copy
        log.warning("the change is saved and signed, but console.toml was not updated: %s", exc)
    return session.actor


def with_signed_decision(settings: ConsoleSettings, registry: Registry) -> ConsoleSettings:
    """``settings`` with the decision HR signed in the registry (what the console really decides with)."""
    from core.registry.decision import decision_settings

    signed = decision_settings(registry)
    if signed is None:
        return settings
    policy, min_face = signed
    if (policy, min_face) != (settings.policy, settings.min_face):
        log.info("console.toml's [policy] differs from the decision settings HR signed; the signed ones apply")
    return replace(settings, policy=policy, min_face=min_face)
