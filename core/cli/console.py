"""``facegate console``: the guard console's command line.

The console itself is Qt and lives in ``gui/``; ``core`` never imports it.  The ``facegate`` command
(``gui.launcher``) hands :func:`core.cli.main.main` a runner for it; started any other way
(``python -m core.cli.main console``), the command says how to start the console instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import DATA_DIR_HELP, POSITIVE_SECONDS, add_backend_arg, check_output_file
from core.errors import FaceGateError


def cmd_console(args: argparse.Namespace) -> int:
    """Run ``facegate console`` through the runner the launcher gave, if any."""
    from core.live.session import parse_sources
    from core.live.sources import open_source

    # Bad cameras and output paths fail here, in one line, before a window or a model is made.
    for name, spec in parse_sources(args.source or []) if args.source else []:
        open_source(spec, name=name)  # created, not started: a missing file or bad scheme is refused
    if args.screenshot:
        check_output_file(Path(args.screenshot), create_folder=True)
    runner = getattr(args, "console_runner", None)
    if runner is None:
        raise FaceGateError("The console is part of FaceGate's window program: start it with the 'facegate' "
                            "command (it needs PySide6), or use the headless 'facegate monitor'.")
    return int(runner(args))


def register(sub: Any) -> None:
    """Add ``console`` to the ``facegate`` sub-parser."""
    p = sub.add_parser("console", help="the guard console: live feeds, decisions, events, model comparison "
                                       "(the default command)")
    p.add_argument("--source", action="append",
                   help="camera, as for 'facegate monitor' (repeat for up to 4; default: the cameras in the "
                        "console settings, else the built-in demo)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--fullscreen", action="store_true", help="start full screen (F11 toggles)")
    p.add_argument("--quit-after", type=POSITIVE_SECONDS, metavar="S",
                   help="close the window after S seconds, more than 0 (smoke tests, screenshots)")
    p.add_argument("--screenshot", metavar="FILE",
                   help="with --quit-after: save a PNG of the window just before it closes")
    p.add_argument("--tab", choices=["live", "events", "models", "hr"], default="live",
                   help="the view to show first (default: live)")
    add_backend_arg(p)
    p.set_defaults(func=cmd_console)
