"""The console's HR login: who is logged in, and for how long.

Everything HR does in the console (the enrollment wizard, the operators and model-versions views) goes
through one :class:`HRAccess`: :meth:`HRAccess.require` runs an action with the logged-in
:class:`~core.registry.keys.HRSession`, asking for a login first when nobody is logged in (the same
:class:`~gui.settings.dialog.HRLoginDialog` and the same core code — :func:`core.registry.security.authorize_hr`,
delay, lockout, audit — as every other HR action).  The login locks again after
:attr:`HRAccess.idle_ms` without HR activity (default 5 minutes), or at once with :meth:`HRAccess.lock`:
a console left open at an HR desk must not stay unlocked.

The passphrase is checked (scrypt, ~0.1 s) in a worker thread; the session object lives only in this
QObject, in memory, and is dropped on lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QWidget

from core.errors import FaceGateError, PermissionDenied
from core.registry.keys import HRSession
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

IDLE_MS = 5 * 60 * 1000
"""An HR login locks after this long without HR activity."""


class LoginWorker(QObject):
    """Checks one HR login in its own thread (start slot ``run``)."""

    accepted = Signal(object)  # HRSession
    refused = Signal(str)
    failed = Signal(str)

    def __init__(self, registry_path: Path, account: str | None, passphrase: str, action: str) -> None:
        super().__init__()
        self.registry_path, self.account, self._passphrase, self.action = registry_path, account, passphrase, action

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.security import authorize_hr

        account, passphrase = self.account, self._passphrase
        self._passphrase = ""
        try:
            with Registry.open(self.registry_path) as registry:
                session = authorize_hr(registry, lambda: (account, passphrase), action=self.action)
        except PermissionDenied as exc:  # wrong passphrase, the wait, a lockout, no accounts: core's sentence
            self.refused.emit(str(exc))
        except FaceGateError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: said in the dialog, logged with its traceback
            log.exception("HR login failed")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.accepted.emit(session)
        finally:
            passphrase = ""


class HRAccess(QObject):
    """The console's one HR login; see the module docstring.

    Signals
    -------
    changed(object)
        The :class:`HRSession` now logged in, or ``None`` when locked.
    refused(str)
        A login was refused; the sentence says why (shown by the caller).
    """

    changed = Signal(object)
    refused = Signal(str)

    def __init__(self, registry_path: Path, parent: QObject | None = None, *, idle_ms: int = IDLE_MS) -> None:
        super().__init__(parent)
        self.registry_path = registry_path
        self.idle_ms = idle_ms
        self._session: HRSession | None = None
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self.lock)
        self._worker: LoginWorker | None = None
        self._thread = None
        self._pending: tuple[str, Callable[[HRSession], None]] | None = None
        self.dialog = None
        self.last_account = ""

    @property
    def session(self) -> HRSession | None:
        """The logged-in account, or ``None``."""
        return self._session

    def touch(self) -> None:
        """HR is active: the idle lock starts counting again."""
        if self._session is not None:
            self._idle.start(self.idle_ms)

    @Slot()
    def lock(self) -> None:
        """Log out now (also after the idle time)."""
        if self._session is None:
            return
        log.info("HR login of %s locked", self._session.actor)
        self._session = None
        self._idle.stop()
        self.changed.emit(None)

    def require(self, parent: QWidget, action: str, then: Callable[[HRSession], None]) -> None:
        """Run ``then(session)`` as the logged-in account, asking for a login first if needed.

        ``then`` runs on the GUI thread; if the login is cancelled or refused it never runs.
        """
        if self._session is not None:
            self.touch()
            then(self._session)
            return
        from gui.settings.dialog import HRLoginDialog

        self._pending = (action, then)
        if self.dialog is not None:
            self.dialog.deleteLater()
        dialog = HRLoginDialog([action], self.last_account, parent=parent, ok_text="Log in",
                               intro="This needs an HR login; it stays logged in until a few idle minutes pass:")
        dialog.accepted.connect(lambda: self._check(dialog))
        dialog.rejected.connect(self._cancelled)
        self.dialog = dialog
        dialog.open()

    @Slot()
    def _cancelled(self) -> None:
        self._pending = None

    def _check(self, dialog: QWidget) -> None:
        account, passphrase = dialog.credentials()  # type: ignore[attr-defined]
        dialog.clear_passphrase()  # type: ignore[attr-defined]
        self.last_account = account or ""
        action = self._pending[0] if self._pending else "HR login"
        worker = LoginWorker(self.registry_path, account, passphrase, action)
        passphrase = ""
        worker.accepted.connect(self._accepted)
        worker.refused.connect(self._refused)
        worker.failed.connect(self._refused)
        self._worker = worker
        self._thread = start_worker(worker, "hr-login")

    def _finish(self) -> None:
        stop_thread(self._thread)
        self._thread, self._worker = None, None

    @Slot(object)
    def _accepted(self, session: HRSession) -> None:
        self._finish()
        self._session = session
        self._idle.start(self.idle_ms)
        log.info("HR login: %s", session.actor)
        self.changed.emit(session)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[1](session)

    @Slot(str)
    def _refused(self, message: str) -> None:
        self._finish()
        self._pending = None
        self.refused.emit(message)

    def stop(self) -> None:
        """Lock and wait for a login check still running (the window is closing)."""
        self.lock()
        self._finish()
