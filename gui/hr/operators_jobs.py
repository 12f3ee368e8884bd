"""What the operators view asks of the registry, each run on a thread of its own (never the GUI thread).

Every function here opens its own :class:`~core.registry.Registry` (one per thread) and returns a plain
value; :class:`Job` runs one of them in a QThread and hands the result back through queued signals.  HR
changes are wrapped in :func:`core.registry.security.signed`, exactly as ``facegate people …`` does, so
each ends with HR's signature and the same audit rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from core.errors import FaceGateError
from core.registry import Operator
from core.registry.keys import HRSession

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
THUMB = 56
"""Width of the photo thumbnails in the table, in pixels."""


@dataclass(frozen=True)
class OperatorRow:
    """One row of the operators table: the operator, when last let in, their face (or ``None``)."""

    operator: Operator
    last_seen: datetime | None
    thumbnail: QImage | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ActionResult:
    """What an HR action did, in words; ``warning``: it did not fully succeed (say so prominently)."""

    message: str
    warning: bool = False


class Job(QObject):
    """Runs ``fn(progress)`` once in its thread (start slot ``run``); the result comes back as ``done``.

    A :class:`~core.errors.FaceGateError` becomes ``failed`` with its sentence; anything else (a bug) is
    logged with its traceback and ``failed`` says where the details went — never a traceback on screen.
    """

    done = Signal(object, object)  # job, result
    failed = Signal(object, str)  # job, message
    progress = Signal(object, float, str)  # job, fraction, message

    def __init__(self, name: str, fn: Callable[[Progress], Any]) -> None:
        super().__init__()
        self.name = name
        self._fn = fn
        self.on_done: Callable[[Any], None] | None = None
        self.on_failed: Callable[[str], None] | None = None

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(lambda fraction, message: self.progress.emit(self, float(fraction), str(message)))
        except FaceGateError as exc:
            self.failed.emit(self, str(exc))
        except Exception as exc:
            log.exception("operators view: %s failed", self.name)
            self.failed.emit(self, f"Something went wrong ({type(exc).__name__}: {exc}). Nothing more was changed; "
                                   "the details are in the console's log.")
        else:
            self.done.emit(self, result)
        finally:
            self._fn = lambda progress: None  # drop the session and paths it held


# -- reading -----------------------------------------------------------------------------------------------


def _qimage(rgb: Any) -> QImage:
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # owns its pixels


def load_operators(registry_path: Path) -> list[OperatorRow]:
    """Every operator (active or not) with their last recognition and a face thumbnail."""
    from core.registry import Registry
    from core.registry.cards import operator_card
    from core.registry.history import last_seen

    with Registry.open(registry_path) as reg:
        people = reg.list_operators()
        seen = last_seen(reg)
        rows = []
        for op in people:
            card = operator_card(reg, op.employee_id, size=THUMB)
            thumb = _qimage(card.photo) if card is not None and card.photo is not None else None
            rows.append(OperatorRow(op, seen.get(op.employee_id), thumb))
    return rows


def load_history(registry_path: Path, employee_id: str) -> tuple[Any, Any, QImage | None]:
    """``(OperatorHistory, DriftAdvice or None, a larger face photo)`` of one operator."""
    from core.registry import Registry
    from core.registry.cards import operator_card
    from core.registry.history import drift, recognition_history

    with Registry.open(registry_path) as reg:
        history = recognition_history(reg, employee_id)
        card = operator_card(reg, employee_id, size=120)
    photo = _qimage(card.photo) if card is not None and card.photo is not None else None
    return history, drift(history), photo


def preview_erasure(registry_path: Path, models_dir: Path, employee_id: str) -> Any:
    """The :class:`~core.registry.history.ErasurePreview` HR confirms."""
    from core.registry import Registry
    from core.registry.history import erasure_preview

    with Registry.open(registry_path) as reg:
        return erasure_preview(reg, models_dir, employee_id)


# -- HR changes (signed) -----------------------------------------------------------------------------------


def edit_operator(registry_path: Path, models_dir: Path, session: HRSession, employee_id: str, name: str,
                  department: str) -> ActionResult:
    from core.registry import Registry
    from core.registry.security import signed

    with Registry.open(registry_path) as reg:
        before = reg.get_operator(employee_id)
        if (before.name, before.department) == (name.strip(), department.strip()):
            return ActionResult(f"Nothing to change for {employee_id}.")
        with signed(reg, session, reason=f"edit operator {employee_id}", models_dir=models_dir):
            reg.update_operator(employee_id, name=name, department=department, actor=session.actor)
    return ActionResult(f"Saved the details of {employee_id}, signed by {session.actor}.")


def set_operator_active(registry_path: Path, models_dir: Path, session: HRSession, employee_id: str,
                        active: bool) -> ActionResult:
    from core.registry import Registry
    from core.registry.security import signed

    verb = "reactivate" if active else "deactivate"
    with Registry.open(registry_path) as reg, signed(reg, session, reason=f"{verb} {employee_id}",
                                                     models_dir=models_dir):
        reg.set_active(employee_id, active, actor=session.actor)
    if active:
        return ActionResult(f"Reactivated {employee_id}: the gate recognises them again within a few seconds "
                            f"(signed by {session.actor}).")
    return ActionResult(f"Deactivated {employee_id}: the gate no longer lets them in (within a few seconds); "
                        f"their photos stay on file (signed by {session.actor}).")


def erase_operator(registry_path: Path, models_dir: Path, session: HRSession, employee_id: str,
                   progress: Progress) -> ActionResult:
    """The right to erasure, as ``facegate people remove``: the person, then every model that knew them."""
    from core.registry import Registry
    from core.registry.pruning import prune_erased
    from core.registry.security import signed

    with Registry.open(registry_path) as reg, signed(reg, session, reason=f"erase {employee_id}",
                                                     models_dir=models_dir):
        progress(0.0, f"erasing {employee_id} from the gallery")
        report = reg.remove_operator(employee_id, actor=session.actor)
        erased = (f"Erased {report.employee_id}: {report.photos} photos, {report.embeddings} embeddings deleted, "
                  f"{report.events_redacted} events redacted")
        try:
            pruned = prune_erased(reg, models_dir, actor=session.actor,
                                  progress=lambda f, m: progress(0.05 + 0.95 * f, m))
        except FaceGateError as exc:
            raise FaceGateError(f"{erased}; but the model files trained with them were not deleted yet and "
                                f"still hold their face data: {exc} Tell the administrator.") from exc
    warning = bool(pruned.pending or pruned.not_retrained)
    return ActionResult(f"{erased}; {pruned.describe(report.employee_id)}", warning)
