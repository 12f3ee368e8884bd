"""The Settings dialog: Cameras and Decision (HR) tabs, saved to ``console.toml`` on Save.

A change to the decision needs an HR login: the :class:`HRLoginDialog` asks for the account and its
passphrase and lists what HR is about to sign.  Looking up the accounts (:class:`AccountsProbe`) and the
login, the signed registry setting, the audit row and the file write (:class:`PolicySaver`, through
:func:`core.live.settings.apply_policy_change`) run in worker threads, so the live feeds behind the
dialog keep painting through scrypt's deliberate slowness and the login delay.  A refused login saves
nothing and says why in core's own words (a wrong passphrase, the wait before the next try, a locked
account); a registry without HR accounts cannot have its decision changed here at all.  Camera
changes save without asking.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
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


NO_ACCOUNTS = ("This registry has no HR accounts yet, so the decision cannot be changed here. The administrator "
               "creates the first with 'facegate accounts init'.")
NOT_ASKED = "Not saved: a change to the decision needs an HR login."


class AccountsProbe(QObject):
    """Counts the registry's enabled HR accounts and finds the cameras HR has not approved, in its own
    thread (start slot ``run``).

    The login dialog needs to know whether there are any accounts, whether the account name may be
    left out (exactly one), and whether a new camera needs HR's approval; opening the registry is file
    I/O, which stays off the GUI thread.  ``counted(enabled, cameras)``: the number of enabled accounts
    and the cameras to approve, passwords masked.
    """

    counted = Signal(int, object)
    failed = Signal(str)

    def __init__(self, registry_path: Path, new: ConsoleSettings | None = None) -> None:
        super().__init__()
        self.registry_path = registry_path
        self.new = new

    @Slot()
    def run(self) -> None:
        from core.live.settings import cameras_to_approve, mask_text
        from core.registry import Registry
        from core.registry.accounts import list_accounts

        try:
            with Registry.open(self.registry_path) as registry:
                enabled = sum(not account.disabled for account in list_accounts(registry))
                cameras = ([mask_text(c) for c in cameras_to_approve(registry, self.new)]
                           if self.new is not None else [])
        except FaceGateError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: said in the dialog, logged with its traceback
            log.exception("settings: looking up the HR accounts failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.counted.emit(enabled, cameras)


class PolicySaver(QObject):
    """Logs HR in, signs and audits the decision, and saves, in its own thread (start slot ``run``)."""

    saved = Signal(object)  # ConsoleSettings
    refused = Signal(str)
    failed = Signal(str)

    def __init__(self, registry_path: Path, old: ConsoleSettings, new: ConsoleSettings, account: str | None,
                 passphrase: str, path: Path | None) -> None:
        super().__init__()
        self.registry_path, self.old, self.new, self.path = registry_path, old, new, path
        self.account = account
        self._passphrase = passphrase
        self.actor = ""  # the account that signed, once saved ("admin:alice")

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.accounts import has_accounts

        account, passphrase = self.account, self._passphrase
        self._passphrase = ""  # only the lambda below holds it now, and only for this call
        try:
            with Registry.open(self.registry_path) as registry:  # this thread's own connection
                if not has_accounts(registry):
                    self.refused.emit(NO_ACCOUNTS)
                    return
                self.actor = apply_policy_change(registry, self.old, self.new,
                                                 credentials=lambda: (account, passphrase), path=self.path)
        except PermissionDenied as exc:  # wrong passphrase, the wait, a lockout: core's sentence says which
            self.refused.emit(str(exc))
        except FaceGateError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: said in the dialog, logged with its traceback
            log.exception("settings: saving the decision failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            log.info("settings: decision changed and signed by %s", self.actor)
            self.saved.emit(self.new)
        finally:
            passphrase = ""  # the lambda's cell too: nothing here keeps it after the login


class HRLoginDialog(QDialog):
    """Asks for an HR account and its passphrase to sign a decision change.

    Parameters
    ----------
    changes
        What HR is about to sign, in words (``probability floor 0.50 → 0.80``).
    account
        Prefilled account name (the last one used in the Settings dialog).
    single_account
        Whether the registry has exactly one enabled account, so the name may be left empty.
    intro, ok_text
        The sentence above the list, and the OK button's text (the console's HR tab logs in for a
        while rather than signing one change).
    """

    def __init__(self, changes: list[str], account: str = "", *, single_account: bool = False,
                 parent: QWidget | None = None,
                 intro: str = "Changing who is let in needs an HR login. You sign these changes:",
                 ok_text: str = "Sign and save") -> None:
        super().__init__(parent)
        self.setWindowTitle("HR login")
        self.setObjectName("hrLogin")
        # A frame of its own: it opens over the Settings dialog, in the same colours.
        self.setStyleSheet(theme.STYLESHEET + " QDialog#hrLogin { border: 2px solid "
                           f"{theme.DECISION_COLOURS['checking'].name()}; }}")
        self.setFont(theme.font(theme.BASE_POINTS))
        self.single_account = single_account
        intro_label = QLabel(intro)
        intro_label.setWordWrap(True)
        self.changes = QLabel("\n".join(f"  • {c}" for c in changes))
        self.changes.setStyleSheet(f"color: {theme.DECISION_COLOURS['checking'].name()}; font-weight: bold;")
        self.account = QLineEdit(account)
        self.account.setPlaceholderText("optional: this registry has one account" if single_account
                                        else "your HR account, e.g. alice")
        self.account.setMinimumWidth(320)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("the account's passphrase")
        form = QFormLayout()
        form.addRow("Account", self.account)
        form.addRow("Passphrase", self.passphrase)
        note = QLabel("The change is signed with your account and recorded in the audit log. After a wrong "
                      "passphrase the account waits before the next try, and it is locked after 5 in a row.")
        note.setWordWrap(True)
        note.setStyleSheet(HINT_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.account.textChanged.connect(self._update_ok)
        self.passphrase.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(intro_label)
        layout.addWidget(self.changes)
        layout.addSpacing(6)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)
        (self.passphrase if account or single_account else self.account).setFocus()
        self._update_ok()

    def credentials(self) -> tuple[str | None, str]:
        """``(account or None, passphrase)`` as typed."""
        return self.account.text().strip() or None, self.passphrase.text()

    def clear_passphrase(self) -> None:
        """Do not keep the passphrase in a widget once it was handed over."""
        self.passphrase.clear()

    @Slot()
    def _update_ok(self) -> None:
        named = bool(self.account.text().strip()) or self.single_account
        self.ok_button.setEnabled(named and bool(self.passphrase.text()))


class SettingsDialog(QDialog):
    """Cameras and the decision policy; see the module docstring.

    Parameters
    ----------
    settings
        The settings in force, with the decision HR signed (:func:`core.live.settings.with_signed_decision`,
        or the main window's :class:`~core.live.session.ModelInfo`), not ``console.toml``'s display copy.
    registry_path
        The registry (``facegate.db``) whose HR accounts, signed settings and audit log a decision
        change uses.
    parent
        The main window.
    path
        The settings file (default: ``console.toml`` in the config folder).

    After ``exec()`` (or ``open()``) returns accepted, :meth:`result_settings` holds the settings,
    already saved.  ``saved`` is emitted with them just before the dialog closes.  ``login_dialog`` is
    the HR login while it is asked for (tests fill it in).
    """

    saved = Signal(object)  # ConsoleSettings

    def __init__(self, settings: ConsoleSettings, registry_path: Path, parent: QWidget | None = None, *,
                 path: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceGate — Settings")
        self.setStyleSheet(theme.STYLESHEET)
        self.setFont(theme.font(theme.BASE_POINTS))
        self.settings = settings
        self.registry_path = Path(registry_path)
        self.path = path
        self.last_account = ""  # prefilled in the next login, for this dialog's lifetime only
        self._result: ConsoleSettings | None = None
        self._job: QObject | None = None  # the AccountsProbe or PolicySaver running, at most one
        self._job_thread: QThread | None = None
        self.login_dialog: HRLoginDialog | None = None
        self._pending: ConsoleSettings | None = None  # the settings waiting for the accounts look-up

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
        """Save: at once if the decision is unchanged, else after an HR login."""
        try:
            new = self.edited_settings()
        except FaceGateError as exc:
            self._say(str(exc), error=True)
            return
        if new == self.settings:
            self._done(new, saved=False)
        else:
            # A decision change, or a camera HR has not approved, needs an HR login (the probe finds out).
            self._find_accounts(new)

    # -- the HR path ------------------------------------------------------------------------------------

    def _find_accounts(self, new: ConsoleSettings) -> None:
        """First how many accounts there are (none: nothing to ask), then the login."""
        self._pending = new
        probe = AccountsProbe(self.registry_path, new)
        probe.counted.connect(self._accounts_counted)  # a slot of this dialog: queued to the GUI thread
        probe.failed.connect(self._policy_failed)
        self._start(probe, "settings-accounts", "Looking up the HR accounts…")

    @Slot(int, object)
    def _accounts_counted(self, enabled: int, cameras: list[str]) -> None:
        self._finish_job()
        new, self._pending = self._pending, None
        if new is None:
            return
        decision = decision_changed(self.settings, new)
        if not decision and not cameras:  # nothing that decides who is let in: no login
            try:
                save_settings(new, self.path)
            except FaceGateError as exc:
                self._say(str(exc), error=True)
                return
            self._done(new)
            return
        if enabled == 0:
            self._policy_refused(NO_ACCOUNTS)
            return
        changes = (self.decision.changes() if decision else []) + [f"approve camera {c}" for c in cameras]
        self._say("Waiting for an HR login…")
        self._ask_login(new, changes, single_account=enabled == 1)

    def _ask_login(self, new: ConsoleSettings, changes: list[str], *, single_account: bool) -> None:
        if self.login_dialog is not None:  # the one a refused try used: a new login starts empty
            self.login_dialog.deleteLater()
        dialog = HRLoginDialog(changes, self.last_account, single_account=single_account, parent=self)
        dialog.accepted.connect(lambda: self._check(new, dialog))
        dialog.rejected.connect(lambda: self._say(NOT_ASKED, error=True))
        self.login_dialog = dialog
        dialog.open()

    def _check(self, new: ConsoleSettings, dialog: HRLoginDialog) -> None:
        account, passphrase = dialog.credentials()
        dialog.clear_passphrase()
        self.last_account = account or ""
        saver = PolicySaver(self.registry_path, self.settings, new, account, passphrase, self.path)
        passphrase = ""
        saver.saved.connect(self._policy_saved)
        saver.refused.connect(self._policy_refused)
        saver.failed.connect(self._policy_failed)
        self._start(saver, "settings-save", "Checking the HR login and signing…")

    def _start(self, job: QObject, name: str, text: str) -> None:
        self._busy(True)
        self._say(text)
        self._job = job
        self._job_thread = start_worker(job, name)

    def _finish_job(self) -> None:
        stop_thread(self._job_thread)
        self._job_thread, self._job = None, None
        self._busy(False)

    @Slot(object)
    def _policy_saved(self, new: ConsoleSettings) -> None:
        self._finish_job()
        self._done(new)

    @Slot(str)
    def _policy_refused(self, message: str) -> None:
        self._finish_job()
        self.tabs.setCurrentWidget(self.decision)
        # Core's sentences mostly end "nothing was changed" already; the lockout ones do not.
        prefix = "" if "nothing was changed" in message.lower() else "Nothing was saved. "
        self._say(prefix + message, error=True)
        log.warning("settings: a decision change was refused: %s", message)

    @Slot(str)
    def _policy_failed(self, message: str) -> None:
        self._finish_job()
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
        self.save_button.setText("Save (HR login)…" if hr else "Save")

    def done(self, result: int) -> None:
        """Every way out (Save, Cancel, Esc, close) stops the camera test; none while a worker runs."""
        if self._job_thread is not None:  # a fraction of a second: its answer closes the dialog or not
            return
        self.cameras.stop_test()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cameras.stop_test()
        super().closeEvent(event)
