"""Start the guard console: check there is a display, build the window, run Qt's event loop."""

from __future__ import annotations

import argparse
import ctypes.util
import os
import sys
from pathlib import Path

#: Debian/Ubuntu packages Qt's X11 ("xcb") platform needs beyond a minimal system, found from the
#: ``NEEDED`` entries of PySide6's ``libqxcb.so`` and the Qt libraries it loads.
APT_PACKAGES = (
    "libxcb-cursor0 libxkbcommon-x11-0 libxkbcommon0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-randr0 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 "
    "libxcb-xkb1 libxcb-glx0 libxcb-util1 libxcb1 libx11-xcb1 libx11-6 libegl1 libgl1 libfontconfig1 "
    "libfreetype6 libdbus-1-3 libglib2.0-0 fonts-dejavu-core"
)
#: The shared libraries behind :data:`APT_PACKAGES` that are most often missing, as find_library names.
_XCB_LIBS = ("xcb-cursor", "xkbcommon-x11", "xcb-icccm", "xcb-image", "xcb-keysyms", "xcb-randr",
             "xcb-render-util", "xcb-shape", "xcb-xkb", "EGL", "GL", "fontconfig")

NO_DISPLAY = ("there is no display to open the console on (a server or an SSH session?). Run it on a "
              "virtual screen: 'xvfb-run -a facegate console', or use the headless 'facegate monitor'.")


def display_problem() -> str | None:
    """Why Qt could not open a window here, in one sentence, or ``None``.

    Checked before Qt is asked: without a display, Qt's xcb platform aborts the whole process.
    """
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return None  # offscreen, vnc, … chosen on purpose
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return NO_DISPLAY
    if os.environ.get("WAYLAND_DISPLAY") and not platform.startswith("xcb"):
        return None
    missing = [lib for lib in _XCB_LIBS if ctypes.util.find_library(lib) is None]
    if missing:
        return (f"Qt's X11 platform needs system libraries that are missing ({', '.join(missing)}); install "
                f"them with: sudo apt-get install -y {APT_PACKAGES}")
    return None


def install_excepthook(verbose: bool = False) -> Path:
    """A bug in a slot must not print a traceback on the guard's terminal nor close the console: one line
    on stderr, the traceback in a log file (returned)."""
    import logging
    import traceback

    import platformdirs

    folder = Path(os.environ.get("FACEGATE_LOG_DIR") or platformdirs.user_log_dir("facegate", appauthor=False))
    log_file = folder / "console.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not verbose:  # the terminal gets one-line messages; tracebacks logged by core go to the file
        for old in list(root.handlers):
            if type(old) is logging.StreamHandler:
                root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.WARNING))

    def hook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
        logging.getLogger("gui").error("unexpected error\n%s", "".join(traceback.format_exception(kind, exc, tb)))  # type: ignore[arg-type]
        print(f"facegate: error: unexpected {kind.__name__} in the console: {exc or 'no message'}. This is a bug "
              f"in FaceGate; the details are in {log_file}. The console keeps running.", file=sys.stderr)

    sys.excepthook = hook
    return log_file


def run(args: argparse.Namespace) -> int:
    """``facegate console``: show the window until it is closed (or ``--quit-after``)."""
    problem = display_problem()
    if problem:
        print(f"facegate: error: {problem}", file=sys.stderr)
        return 2
    install_excepthook(bool(getattr(args, "verbose", False)))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from core.errors import FaceGateError
    from core.live.settings import load_settings, settings_path
    from gui.main_window import MainWindow

    try:
        console = load_settings()
        path = settings_path()
        data_dir = Path(args.data_dir).expanduser() if args.data_dir else console.data_dir
        overrides: dict[str, object] = {"data_dir": data_dir}
        if args.source:
            overrides["sources"] = tuple(args.source)
        settings = console.session_settings(**overrides)
    except (FaceGateError, ValueError, OSError) as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "facegate"])
    app.setApplicationName("FaceGate")
    window = MainWindow(settings, console=console, settings_path=path)
    window.restore_layout()
    window.tabs.setCurrentIndex({"live": 0, "events": 1, "models": 2, "hr": 3}[args.tab])
    if args.fullscreen or console.window.fullscreen:
        window.showFullScreen()
    else:
        window.show()
    if args.quit_after:
        def finish() -> None:
            if args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(args.screenshot))
            window.close()

        QTimer.singleShot(int(args.quit_after * 1000), finish)
    window.closed.connect(lambda report: app.quit())
    app.exec()
    report = window.stop()
    failed = getattr(report, "events_failed", 0) + getattr(report, "events_pending", 0)
    return 2 if failed else 0
