"""Screenshots of the guard console on the built-in demo, for the README.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots.py

Starts the real console (a copy of a trained demo registry, the demo camera) as a gate runs it — HR's
first account made, the state signed, the trust anchor installed (in a temporary folder) and the demo
camera approved — waits for the moments worth showing — a recognised face, a stranger's alarm, events
in the log, the model comparison with a live chart — and saves ``docs/console-*.png``.  Also one at
1366×768, the smallest layout it supports, and the HR login the Settings dialog asks for.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def signed_and_anchored(data: Path, trust: Path) -> None:
    """Make the demo registry HR's, as at a real gate: first account, signature, anchor, approved camera."""
    import os

    from core.registry import Registry
    from core.registry.accounts import init_accounts
    from core.registry.anchor import install_anchor
    from core.registry.decision import set_approved_cameras
    from core.registry.signing import PUBLIC_KEY_SETTING, registry_id

    os.environ["FACEGATE_TRUST_DIR"] = str(trust)
    with Registry.open(data / "facegate.db") as reg:
        session = init_accounts(reg, "alice", "correct horse battery staple")
        set_approved_cameras(reg, session, ["demo=demo"], ["demo=demo"])
        install_anchor(registry_id(reg), reg.get_setting(PUBLIC_KEY_SETTING))


def login_shot(app, window, out: Path) -> None:
    """The Settings dialog's HR login, for a stricter probability floor."""
    from benchmarks.bench_console import wait_for

    from dataclasses import replace

    from core.live.settings import ConsoleSettings
    from gui.settings import SettingsDialog

    info = window.model_info
    current = ConsoleSettings()
    if info is not None and info.policy is not None:
        current = replace(current, policy=info.policy, min_face=info.min_face)
    dialog = SettingsDialog(current, window._registry_path(), window, path=Path(out.parent / "out" / "unused.toml"))
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.decision)
    dialog.decision.probability.setValue(0.8)
    dialog.save()
    wait_for(app, lambda: dialog.login_dialog is not None and dialog.login_dialog.isVisible(), 30)
    dialog.login_dialog.account.setText("alice")
    wait_for(app, lambda: False, 0.5)
    app.primaryScreen().grabWindow(0).save(str(out / "console-hr-login.png"))  # the window and both dialogs
    print("saved docs/console-hr-login.png", flush=True)
    dialog.login_dialog.reject()
    dialog.reject()


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from benchmarks.bench_console import trained_registry, wait_for
    from core.live.session import SessionSettings
    from core.live.tracking import TrackState
    from gui.feed import track_state
    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["facegate"])
    work = Path(tempfile.mkdtemp(prefix="facegate-shots-"))
    data = trained_registry(work)
    signed_and_anchored(data, work / "trust")
    out = ROOT / "docs"

    def shoot(window, name: str) -> None:
        wait_for(app, lambda: False, 0.3)  # let the last paint land
        path = out / name
        window.grab().save(str(path))
        print("saved", path.relative_to(ROOT), flush=True)

    window = MainWindow(SessionSettings(sources=("demo",), data_dir=data))
    window.resize(1600, 1000)
    window.show()
    tile = window.grid.tiles["demo"]

    def face(state: str):
        def check() -> bool:
            frame = tile.frame
            return bool(frame and any(track_state(t) == state and t.models and t.observations >= 3
                                      for t in frame.result.tracks))
        return check

    card = window.panel.cards["demo"]
    wait_for(app, lambda: face("recognised")() and card.decision is not None
             and card.decision.track.state is TrackState.NAMED and card.event_id is not None, 240)
    while window.alarms:
        window.acknowledge_alarm()
    shoot(window, "console-live.png")
    wait_for(app, lambda: face("unknown")() and any(a.state == "unknown" for a in window.alarms), 240)
    shoot(window, "console-unknown.png")
    deadline = time.monotonic() + 40
    wait_for(app, lambda: time.monotonic() > deadline, 45)  # a few more people through the gate
    window.tabs.setCurrentIndex(1)
    shoot(window, "console-events.png")
    window.tabs.setCurrentIndex(2)
    wait_for(app, face("recognised"), 120)
    frame = tile.frame
    if frame is not None and window.comparison_view is not None:
        track = next(t for t in frame.result.tracks if t.state is not TrackState.CHECKING)
        window.comparison_view.select_track("demo", track.id)  # type: ignore[attr-defined]
    later = time.monotonic() + 4
    wait_for(app, lambda: time.monotonic() > later, 6)
    shoot(window, "console-models.png")
    window.tabs.setCurrentIndex(0)
    window.resize(1366, 768)
    wait_for(app, face("recognised"), 120)
    shoot(window, "console-1366x768.png")
    window.resize(1600, 1000)
    login_shot(app, window, out)
    window.close()
    wait_for(app, lambda: window.thread is None, 60)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
