"""GUI tests: pytest-qt on the offscreen platform; no test may leave a thread running."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _no_thread_left_running():
    """Fail a test that leaves a QThread or a Python worker thread running (napari's check)."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    yield
    from gui.threads import running_threads

    assert running_threads() == [], f"QThreads left running: {running_threads()}"
    ours = ("live-session", "event-writer", "model-watcher", "source-")
    leftovers = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()
                 and (not t.daemon or t.name.startswith(ours) or t.name.endswith(("-overlay", "-recognition")))]
    assert not leftovers, f"threads left running: {leftovers}"
