"""The console's HR tab: the login (locks when idle), the enrollment wizard, operators and model versions.

Built once the registry is known (:meth:`gui.main_window.MainWindow._open_views`).  Every change made
here goes through the one :class:`~gui.hr.access.HRAccess` and ends with HR's signature; the running
console picks it up by itself (its model watcher checks the signature and reloads).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from core.registry.keys import HRSession
from gui import theme
from gui.hr.access import HRAccess

log = logging.getLogger(__name__)


class HRPanel(QWidget):
    """The HR tab.

    Parameters
    ----------
    registry_path, models_dir
        The registry the console runs on.
    cameras
        ``(name, spec)`` of the configured cameras, offered for capturing enrollment photos (besides
        webcam 0).
    access
        The console's HR login (one per window).
    """

    def __init__(self, registry_path: Path, models_dir: Path, cameras: Sequence[tuple[str, str]],
                 access: HRAccess, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry_path, self.models_dir, self.access = registry_path, models_dir, access
        self.wizard: QWidget | None = None
        self._seen = False
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.who = QLabel()
        self.who.setFont(theme.font(theme.BASE_POINTS, bold=True))
        self.login_button = QPushButton("Log in (HR)")
        self.login_button.clicked.connect(self.log_in)
        self.lock_button = QPushButton("Lock")
        self.lock_button.clicked.connect(access.lock)
        self.camera = QComboBox()
        self.camera.addItem("webcam 0", "0")
        for name, spec in cameras:
            from core.live.sources.addresses import display_spec

            self.camera.addItem(f"{name} ({display_spec(spec)})", spec)
        self.enroll_button = QPushButton("Enroll an operator…")
        self.enroll_button.clicked.connect(self.enroll)
        bar.addWidget(self.who, 1)
        bar.addWidget(QLabel("Photo camera:"))
        bar.addWidget(self.camera)
        bar.addWidget(self.enroll_button)
        bar.addWidget(self.login_button)
        bar.addWidget(self.lock_button)
        layout.addLayout(bar)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs, 1)
        self.operators = self._view("gui.hr.operators", "OperatorsView", "Operators")
        self.versions = self._view("gui.hr.models_view", "ModelVersionsView", "Model versions")
        self.tabs.currentChanged.connect(self._shown)  # after the views: each loads itself when built
        access.changed.connect(self._changed)
        access.refused.connect(self._refused)
        self._changed(access.session)

    def _view(self, module: str, name: str, title: str) -> QWidget | None:
        import importlib

        try:
            cls = getattr(importlib.import_module(module), name)
            kwargs = {"show_login": False} if name == "ModelVersionsView" else {}  # the panel shows the login
            view: QWidget = cls(self.registry_path, self.models_dir, self.access, **kwargs)
        except Exception as exc:  # one view failing must not take the console down
            log.exception("HR view %s unavailable", title)
            view = QLabel(f"{title} could not be opened: {exc}")
            view.setAlignment(Qt.AlignmentFlag.AlignCenter)  # type: ignore[attr-defined]
            self.tabs.addTab(view, title)
            return None
        self.tabs.addTab(view, title)
        return view

    @Slot(int)
    def _shown(self, index: int) -> None:
        """A view brought to the front shows what changed meanwhile (the wizard, the CLI, another desk)."""
        reload = getattr(self.tabs.widget(index), "reload", None)
        if callable(reload):
            reload()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._seen:  # the first time, each view has just loaded itself
            self._shown(self.tabs.currentIndex())
        self._seen = True

    @Slot(object)
    def _changed(self, session: HRSession | None) -> None:
        if session is None:
            self.who.setText("Locked: HR actions ask for an HR login (it locks again after a few idle minutes).")
        else:
            self.who.setText(f"Logged in as {session.actor}. Locks after {self.access.idle_ms // 60000} idle minutes.")
        self.lock_button.setEnabled(session is not None)
        self.login_button.setEnabled(session is None)
        self.message.clear()

    @Slot(str)
    def _refused(self, text: str) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {theme.DECISION_COLOURS['unknown'].name()}; font-weight: bold;")

    @Slot()
    def log_in(self) -> None:
        self.access.require(self, "HR login at the console", lambda session: None)

    @Slot()
    def enroll(self) -> None:
        """Open the enrollment wizard (after an HR login)."""
        self.access.require(self, "enroll an operator", lambda session: self._open_wizard())

    def _open_wizard(self) -> None:
        try:
            from gui.hr.wizard import EnrollmentWizard

            wizard = EnrollmentWizard(self.registry_path, self.models_dir, self.access, str(self.camera.currentData()))
        except Exception as exc:
            log.exception("enrollment wizard unavailable")
            self._refused(f"The enrollment wizard could not be opened: {exc}")
            return
        self.wizard = wizard
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        wizard.finished.connect(self._wizard_closed)  # type: ignore[attr-defined]
        wizard.show()

    @Slot()
    def _wizard_closed(self) -> None:
        for view in (self.operators, self.versions):
            reload = getattr(view, "reload", None)
            if callable(reload):
                reload()

    def stop(self) -> None:
        """Stop every worker of the HR views (the window is closing)."""
        for view in (self.wizard, self.operators, self.versions):
            for name in ("shutdown", "stop"):
                stop = getattr(view, name, None)
                if callable(stop):
                    stop()
                    break
        self.access.stop()
