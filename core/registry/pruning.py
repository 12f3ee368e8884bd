"""Erasure reaches every model version: the files of models trained with an erased person are deleted.

:meth:`Registry.remove_operator <core.registry.Registry.remove_operator>` erases a person from the
database, but every model version trained while they were enrolled keeps their embeddings (the
gallery in ``model.joblib``) and classifiers fitted on them, in the active version and in every older
one kept for rollback.  :func:`prune_erased` finds those versions and deletes their files:

1. A version holds an erased person when its ``model.json`` sidecar (plain JSON, read without
   unpickling anything) lists, in ``"classes"``, an employee id that was erased (a ``remove_operator``
   audit row) and is not enrolled now.  The gallery holds exactly the trained classes.
2. If the active version is one of them, a replacement is trained first (:func:`~core.registry.
   training.retrain`, on the same embedder; nothing needs embedding after an erasure) and activated.
   Only then are the old active version's files deleted, so the gate is never left without a model.
   If no replacement can be trained (too few people left, or it fails its checks), the active version
   keeps its files: the report and the ``prune_models`` audit row list it as *pending*, and it holds
   the person's data until HR retrains.
3. The rows are marked first (no path, note :data:`~core.registry.erasure.PRUNED_NOTE`; ``prune_models``
   audit row; the ledger's ``models_pruned``), then the folders are deleted: a crash in between leaves
   folders no row names, which the next prune or :func:`~core.registry.training.sweep_models_dir`
   deletes.  A rolled-back-to or activated pruned version then fails to load with a clear message.

Version folders no row names (an interrupted retrain, or versions of the content a restore replaced)
are deleted too when they hold anybody not enrolled now: nothing can load them, and they may hold
people erased from the content the restore replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.recognition.classifiers import TrainingDataError
from core.registry import ModelVersion, Registry
from core.registry.erasure import PRUNED_NOTE
from core.registry.training import _VERSION_RE, EmbedderInfo, TrainingChecks, _PipelineLike, retrain

log = logging.getLogger(__name__)

__all__ = ["PruneReport", "prune_erased"]

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


@dataclass(frozen=True)
class PruneReport:
    """What :func:`prune_erased` did.

    Attributes
    ----------
    people
        Employee ids of erased people found in model files (returned to HR, stored nowhere).
    deleted
        Model versions whose files were deleted.
    retrained
        The version trained and activated to replace the active one, or ``None``.
    pending
        Versions that still hold an erased person's data: the active one, when no replacement could
        be trained.  Empty when the erasure reached every model file.
    not_retrained
        Why a needed replacement could not be trained (``""`` when none was needed or it worked).
    leftovers
        Folders no registry row names that were deleted.
    """

    people: tuple[str, ...] = ()
    deleted: tuple[int, ...] = ()
    retrained: ModelVersion | None = None
    pending: tuple[int, ...] = ()
    not_retrained: str = ""
    leftovers: tuple[Path, ...] = ()

    def describe(self, who: str | None = None) -> str:
        """One or two plain sentences for HR (``who``: how to name the erased person)."""
        who = who or (", ".join(self.people) if self.people else "the erased people")
        parts = []
        if self.deleted:
            many = "s" if len(self.deleted) > 1 else ""
            parts.append(f"model version{many} {', '.join(map(str, self.deleted))} deleted")
        if self.retrained is not None:
            parts.append(f"new model version {self.retrained.id} active without {who}")
        if self.leftovers:
            parts.append(f"{len(self.leftovers)} unused model folder{'s' if len(self.leftovers) > 1 else ''} "
                         "deleted")
        text = "; ".join(parts) + "." if parts else f"no model file holds {who}'s face data."
        if self.pending:
            text += (f" WARNING: model version {self.pending[0]} is still active and still holds {who}'s "
                     f"face data, because no model could be trained without them: {self.not_retrained} It "
                     "keeps that data until HR retrains with 'facegate train'.")
        elif self.not_retrained:
            text += (f" WARNING: the active model's files were deleted and no new model could be trained: "
                     f"{self.not_retrained} Nobody is recognised until HR retrains with 'facegate train'.")
        return text


def _classes(folder: Path) -> set[str] | None:
    """The identities a version folder was trained on, from its JSON sidecar; ``None`` if unreadable."""
    try:
        classes = json.loads((folder / "model.json").read_text(encoding="utf-8"))["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {str(c) for c in classes} if isinstance(classes, list) else None


def _folders(mv: ModelVersion, models_dir: Path) -> list[Path]:
    """The folder holding this version's files, if any: ``models_dir/<recorded name>`` and nowhere else.

    The rule :func:`~core.registry.training.load_active_model` loads by: a recorded path elsewhere
    (the registry is writable by the guard's account) must never make a prune delete another folder.
    """
    if not mv.path or not _VERSION_RE.match(Path(mv.path).name):
        return []
    folder = models_dir / Path(mv.path).name
    try:
        inside = not folder.is_symlink() and folder.resolve().parent == models_dir.resolve()
    except (OSError, RuntimeError):
        return []
    return [folder] if inside and (folder / "model.json").is_file() else []


def _embedder_of(active: ModelVersion, models_dir: Path,
                 pipeline: _PipelineLike | EmbedderInfo | None) -> EmbedderInfo | None:
    """The embedder to retrain on: the active version's own (same embeddings), else ``pipeline``'s.

    The signature comes from the active version's sidecar, or, when its files are gone (a restore
    after a prune), from any version folder's sidecar with the same embedder name and version.
    """
    others = sorted(f for f in models_dir.iterdir() if _VERSION_RE.match(f.name)) if models_dir.is_dir() else []
    folders = [*_folders(active, models_dir), *others]
    for folder in folders:
        try:
            meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
            info = EmbedderInfo(str(meta["embedder"]), str(meta["embedder_version"]), str(meta["signature"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (info.name, info.version) == (active.embedder, active.embedder_version):
            return info
    if pipeline is None:
        return None
    return pipeline if isinstance(pipeline, EmbedderInfo) else EmbedderInfo.of(pipeline)


def prune_erased(
    registry: Registry,
    models_dir: Path | str,
    *,
    actor: str,
    pipeline: _PipelineLike | EmbedderInfo | None = None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    checks: TrainingChecks | None = None,
) -> PruneReport:
    """Delete the files of every model version trained with an erased person; replace the active one.

    Run it after :meth:`Registry.remove_operator <core.registry.Registry.remove_operator>` and after
    :meth:`Registry.restore <core.registry.Registry.restore>`; running it again is harmless.  Audited
    as ``prune_models`` (version ids only) when it changed anything or left something pending.

    Parameters
    ----------
    registry
        The open registry.
    models_dir
        Folder of the model versions (``<data dir>/models``).
    actor
        Who erased (the HR user), for the audit trail; the caller checks the HR passphrase.
    pipeline
        Only needed when the active version's files are gone: the embedder to train the replacement
        on.  Otherwise the active version's own embedder (from its ``model.json``) is used.
    progress
        ``progress(fraction, message)`` as it advances (retraining is most of it).
    cancel
        Polled while retraining; when it returns true, :class:`~core.recognition.classifiers.
        TrainingCancelled` is raised and nothing is pruned.
    checks
        Activation checks of the replacement model (:class:`~core.registry.training.TrainingChecks`).

    Returns
    -------
    PruneReport
        What was deleted, the replacement, and what is still pending.
    """
    models_dir = Path(models_dir)
    report = progress or (lambda fraction, message: None)
    erased = registry.erased_employee_ids()
    enrolled = {op.employee_id for op in registry.list_operators()}
    versions = registry.list_models()
    holders: dict[int, set[str]] = {}
    for mv in versions:
        for folder in _folders(mv, models_dir):
            classes = _classes(folder)
            if classes is None:
                log.warning("cannot tell whom model version %d was trained on (%s has no readable classes)",
                            mv.id, folder / "model.json")
            elif classes & erased:
                holders.setdefault(mv.id, set()).update(classes & erased)

    active = registry.active_model()
    retrained: ModelVersion | None = None
    not_retrained = ""
    if active is not None and (active.id in holders or (not active.path and active.notes == PRUNED_NOTE)):
        info = _embedder_of(active, models_dir, pipeline)
        if info is None:
            not_retrained = ("The active model's files are gone, so its face embedder is unknown; train "
                             "with 'facegate train'.")
        else:
            def stage(fraction: float, message: str) -> None:
                report(0.9 * fraction, message)

            try:
                new = retrain(registry, info, models_dir, actor=actor, progress=stage, cancel=cancel,
                              checks=checks, deep=bool(active.metrics.get("deep", False)))
            except TrainingDataError as exc:
                not_retrained = str(exc)
            else:
                if new.active:
                    retrained = new
                else:
                    not_retrained = f"model version {new.id} was trained but failed its checks ({new.notes})."
        if not_retrained:
            log.warning("the active model version %d could not be replaced: %s", active.id, not_retrained)

    # Never delete the files of the model the gate runs on without a replacement: say so instead.
    kept = active.id if active is not None and active.id in holders and retrained is None else None
    deleted = {mid: people for mid, people in holders.items() if mid != kept}
    pending = () if kept is None else (kept,)
    folders = [f for mv in registry.list_models() if mv.id in deleted for f in _folders(mv, models_dir)]
    named = {Path(mv.path).name for mv in registry.list_models() if mv.path}
    leftovers = []
    if models_dir.is_dir():
        for entry in sorted(models_dir.iterdir()):
            if (entry.is_dir() and not entry.is_symlink() and _VERSION_RE.match(entry.name)
                    and entry.name not in named):
                classes = _classes(entry)
                if classes and classes - enrolled:
                    leftovers.append(entry)

    if deleted or pending or leftovers:
        registry.record_pruned_models(deleted, pending=pending, retrained=retrained.id if retrained else None,
                                      leftover_folders=len(leftovers), actor=actor)
    for i, folder in enumerate([*folders, *leftovers]):
        report(0.9 + 0.1 * i / max(1, len(folders) + len(leftovers)), f"deleting {folder.name}")
        shutil.rmtree(folder, ignore_errors=True)
        log.info("deleted model files %s: trained with an erased person", folder)
    people = sorted(set().union(*holders.values())) if holders else []
    report(1.0, f"{len(deleted)} model versions deleted")
    return PruneReport(tuple(people), tuple(sorted(deleted)), retrained, pending, not_retrained,
                       tuple(leftovers))
