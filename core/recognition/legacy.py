"""Old module names, so that model files saved before ``core/`` had subpackages still load.

A saved model names the classes it holds by module (``core.classifiers.Stacker``); those modules
moved (``core.recognition.classifiers``).  :func:`install_legacy_names` registers small alias modules
under the old names that resolve only the names a model file may hold, from their new homes.
Nothing else imports the old names.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

_MOVED: dict[str, str] = {
    "core.classifiers": "core.recognition.classifiers",
    "core.engine": "core.recognition.engine",
    "core.openset": "core.recognition.openset",
}
_lock = threading.Lock()


class _Alias(types.ModuleType):
    """A module that looks names up in the module that replaced it."""

    def __init__(self, old: str, new: str) -> None:
        super().__init__(old, f"Alias of {new} for model files saved under the old name.")
        self._new = new

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self._new), name)


def install_legacy_names() -> None:
    """Register the old module names (idempotent, thread-safe)."""
    with _lock:
        for old, new in _MOVED.items():
            if old not in sys.modules:
                sys.modules[old] = _Alias(old, new)
