"""Every QThread the console starts goes through :func:`start_worker`, so none can be forgotten.

Qt's documented worker pattern: a QObject moved to a QThread, heavy objects created inside the
thread, results back through queued signals, and a clean stop with ``quit()`` + ``wait()`` (never
``terminate()``).  :func:`running_threads` lists the ones still running — the tests fail if any is
left when a test ends, and the main window stops them all in ``closeEvent``.
"""

from __future__ import annotations

import weakref

from PySide6.QtCore import QObject, QThread

_threads: weakref.WeakSet[QThread] = weakref.WeakSet()


def start_worker(worker: QObject, name: str, start_slot: str | None = "run") -> QThread:
    """Move ``worker`` to a new QThread named ``name``, connect ``thread.started`` to
    ``worker.<start_slot>`` (if given), start it and return the thread.

    The caller keeps both alive (Qt does not own them) and stops the thread with
    :func:`stop_thread`.
    """
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    if start_slot is not None:
        thread.started.connect(getattr(worker, start_slot))
    _threads.add(thread)
    thread.start()
    return thread


def stop_thread(thread: QThread | None, timeout_ms: int = 60_000) -> bool:
    """``quit()`` + ``wait()``; ``True`` if the thread has finished."""
    if thread is None:
        return True
    thread.quit()
    finished = thread.wait(timeout_ms)
    if finished:
        _threads.discard(thread)
    return bool(finished)


def running_threads() -> list[str]:
    """Names of the QThreads started here that are still running."""
    return [t.objectName() for t in list(_threads) if t.isRunning()]
