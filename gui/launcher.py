"""The ``facegate`` command: the guard console by default, every headless command otherwise.

``facegate`` and ``facegate console`` open the window; ``facegate monitor``, ``facegate evaluate`` …
run :func:`core.cli.main.main` without importing Qt.  This is the one module of ``gui`` that imports
the CLI (see the import-linter contracts in pyproject.toml).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

_GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facegate`` command."""
    from core.cli.main import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not [a for a in args if a not in _GLOBAL_FLAGS]:
        args.append("console")  # bare `facegate`: the console on the configured (or demo) cameras

    def run_console(parsed: object) -> int:
        from gui.app import run

        return run(parsed)  # type: ignore[arg-type]

    return cli_main(args, console_runner=run_console)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
