"""Screenshots of the guard console on the built-in demo, for the README.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots.py

Starts the real console (a copy of a trained demo registry, the demo camera), waits for the moments
worth showing — a recognised face, a stranger's alarm, events in the log, the model comparison with a
live chart — and saves ``docs/console-*.png``.  Also one at 1366×768, the smallest layout it supports.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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
    window.close()
    wait_for(app, lambda: window.thread is None, 60)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
