"""The Settings dialog: Cameras and Decision (HR) tabs, saved to ``console.toml`` on Save.

A change to the decision asks for the HR passphrase; checking it (scrypt, ~0.1 s), the audit row and
the file write run in a :class:`PolicySaver` worker thread, so the live feeds behind the dialog keep
painting.  A wrong passphrase saves nothing and says so; camera changes save without asking.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.errors import FaceGateError, PermissionDenied
from core.live.settings import ConsoleSettings, apply_policy_change, decision_changed, save_settings
from core.live.sources import SourceOptions
from gui import theme
from gui.settings.cameras import ERROR_STYLE, HINT_STYLE, CamerasPage
from gui.settings.decision import DecisionPage
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)


WRONG_PASSPHRASE = "That is not the HR passphrase. The attempt is recorded in the audit log."
NO_PASSPHRASE = ("No HR passphrase has been set for this registry yet, so the decision cannot be changed "
                 "here. HR sets one first with 'facegate passphrase'.")


def hr_actor() -> str:
    """The audit actor of a decision change made in the console (the account running it)."""
    try:
        return f"hr:{getpass.getuser()}@console"
    except (OSError, KeyError):  # no user name (a service account without one)
        return "hr:console"


class PolicySaver(QObject):
    """Checks the HR passphrase, audits and saves, in its own thread (start slot ``run``)."""

    saved = Signal(object)  # ConsoleSettings
    refused = Signal(str)
    failed = Signal(str)

    def __init__(self, registry_path: Path, old: ConsoleSettings, new: ConsoleSettings, passphrase: str,
                 actor: str, path: Path | None) -> None:
        super().__init__()
        self.registry_path, self.old, self.new = registry_path, old, new
        self._passphrase, self.actor, self.path = passphrase, actor, path

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.security import has_passphrase

        try:
            with Registry.open(self.registry_path) as registry:  # this thread's own connection
                if not has_passphrase(registry):
                    self.refused.emit(NO_PASSPHRASE)
                    return
                apply_policy_change(registry, self.old, self.new, passphrase_provider=lambda: self._passphrase,
                                    actor=self.actor, path=self.path)
        except PermissionDenied:
            self.refused.emit(WRONG_PASSPHRASE)
        except FaceGateError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: said in the dialog, logged with its traceback
            log.exception("settings: saving the decision failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.saved.emit(self.new)
        finally:
            self._passphrase = ""


class SettingsDialog(QDialog):
    """Cameras and the decision policy; see the module docstring.

    Parameters
    ----------
    settings
        The settings in force (as :func:`core.live.settings.load_settings` read them).
    registry_path
        The registry (``facegate.db``) whose HR passphrase and audit log a decision change uses.
    parent
        The main window.
    path
        The settings file (default: ``console.toml`` in the config folder).
    actor
        Recorded in the audit log with a decision change (default: ``hr:<account>@console``).

    After ``exec()`` (or ``open()``) returns accepted, :meth:`result_settings` holds the settings,
    already saved.  ``saved`` is emitted with them just before the dialog closes.
    """

    saved = Signal(object)  # ConsoleSettings

    def __init__(self, settings: ConsoleSettings, registry_path: Path, parent: QWidget | None = None, *,
                 path: Path | None = None, actor: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceGate — Settings")
        self.setStyleSheet(theme.STYLESHEET)
        self.setFont(theme.font(theme.BASE_POINTS))
        self.settings = settings
        self.registry_path = Path(registry_path)
        self.path = path
        self.actor = actor or hr_actor()
        self._result: ConsoleSettings | None = None
        self._saver: PolicySaver | None = None
        self._saver_thread: QThread | None = None
        self.passphrase_dialog: QInputDialog | None = None

        options = SourceOptions(open_timeout_s=settings.open_timeout_s, read_timeout_s=settings.read_timeout_s,
                                loop=True)  # a test clip plays on until the test is stopped
        self.cameras = CamerasPage(settings.cameras, settings.selected, options)
        self.decision = DecisionPage(settings.policy, settings.min_face)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.cameras, "Cameras")
        self.tabs.addTab(self.decision, "Decision (HR)")
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        self.decision.changed.connect(self._update_save_label)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.resize(1100, 640)
        self._update_save_label()

    # -- public ---------------------------------------------------------------------------------------

    def result_settings(self) -> ConsoleSettings:
        """The saved settings after the dialog was accepted; the settings it was opened with otherwise."""
        return self._result if self._result is not None else self.settings

    def edited_settings(self) -> ConsoleSettings:
        """What the dialog holds now (not saved yet)."""
        return replace(self.settings, cameras=self.cameras.cameras(), selected=self.cameras.selected(),
                       policy=self.decision.policy(), min_face=self.decision.min_face_size())

    @Slot()
    def save(self) -> None:
        """Save: at once if the decision is unchanged, else after asking for the HR passphrase."""
        try:
            new = self.edited_settings()
        except FaceGateError as exc:
            self._say(str(exc), error=True)
            return
        if new == self.settings:
            self._done(new, saved=False)
        elif not decision_changed(self.settings, new):
            try:
                save_settings(new, self.path)
            except FaceGateError as exc:
                self._say(str(exc), error=True)
                return
            self._done(new)
        else:
            self._ask_passphrase(new)

    # -- the HR path ------------------------------------------------------------------------------------

    def _ask_passphrase(self, new: ConsoleSettings) -> None:
        dialog = QInputDialog(self)
        dialog.setWindowTitle("HR passphrase")
        dialog.setLabelText("Changing who is let in needs the HR passphrase:\n"
                            + "\n".join(f"  • {c}" for c in self.decision.changes()))
        dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
        dialog.setOkButtonText("Save")
        dialog.textValueSelected.connect(lambda text: self._check(new, text))
        dialog.rejected.connect(lambda: self._say("Not saved: a change to the decision needs the HR passphrase.",
                                                  error=True))
        self.passphrase_dialog = dialog
        dialog.open()

    def _check(self, new: ConsoleSettings, passphrase: str) -> None:
        if self.passphrase_dialog is not None:
            self.passphrase_dialog.setTextValue("")  # do not keep the passphrase in a widget
        self._busy(True)
        self._say("Checking the HR passphrase…")
        saver = PolicySaver(self.registry_path, self.settings, new, passphrase, self.actor, self.path)
        saver.saved.connect(self._policy_saved)
        saver.refused.connect(self._policy_refused)
        saver.failed.connect(self._policy_failed)
        self._saver = saver
        self._saver_thread = start_worker(saver, "settings-save")

    def _finish_saver(self) -> None:
        stop_thread(self._saver_thread)
        self._saver_thread, self._saver = None, None
        self._busy(False)

    @Slot(object)
    def _policy_saved(self, new: ConsoleSettings) -> None:
        self._finish_saver()
        self._done(new)

    @Slot(str)
    def _policy_refused(self, message: str) -> None:
        self._finish_saver()
        self.tabs.setCurrentWidget(self.decision)
        self._say(f"Nothing was saved. {message}", error=True)
        log.warning("settings: a decision change was refused: %s", message)

    @Slot(str)
    def _policy_failed(self, message: str) -> None:
        self._finish_saver()
        self._say(f"Nothing was saved: {message}", error=True)

    # -- helpers ----------------------------------------------------------------------------------------

    def _done(self, new: ConsoleSettings, saved: bool = True) -> None:
        self._result = new
        if saved:
            self.saved.emit(new)
        self.accept()

    def _busy(self, busy: bool) -> None:
        self.tabs.setEnabled(not busy)
        self.buttons.setEnabled(not busy)
        self.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE + " font-weight: bold;" if error else HINT_STYLE)
        self.message.show()

    @Slot()
    def _update_save_label(self) -> None:
        hr = bool(self.decision.changes())
        self.save_button.setText("Save (HR passphrase)…" if hr else "Save")

    def done(self, result: int) -> None:
        """Every way out (Save, Cancel, Esc, close) stops the camera test; none while a save runs."""
        if self._saver_thread is not None:  # a fraction of a second: its answer closes the dialog or not
            return
        self.cameras.stop_test()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cameras.stop_test()
        super().closeEvent(event)
