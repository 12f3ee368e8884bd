"""PySide6 6.12.0 on Python 3.11 drops a reference to ``None`` on every Qt call that returns None.

After ~16k such calls (``QWidget.update()``, ``processEvents()``, ``resize()``) the interpreter
aborts with ``Fatal Python error: none_dealloc`` — a console that runs for hours would die.  The lock
pins 6.11.x; this test fails CI if a lock refresh brings the bug back.  It runs in a subprocess
because the failure is an abort of the whole interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication, QWidget
app = QApplication([])
w = QWidget()
for i in range(50_000):
    w.update()
    if i % 5_000 == 0:
        app.processEvents()
w.close()
print("survived", sys.getrefcount(None) > 0)
"""


def test_50000_qt_calls_returning_none_do_not_abort_the_interpreter():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert "none_dealloc" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "survived True" in proc.stdout
