"""First run of the demo: enroll the 5-celebrity *train* photos into an empty registry and train.

The demo source (:mod:`core.demo.scene`) shows the *val* photos of the same five people and a
stranger, so recognition on it is honest.  :func:`ensure_demo_registry` only ever acts on a registry
with nobody in it: a registry that already has people (a real site's) is never touched.  The
demo people are enrolled under their folder names (``ben_afflek`` …) by the actor ``demo-setup``,
audited like any enrolment; remove them with ``facegate people remove`` once real operators are
enrolled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from core.errors import ModelError
from core.recognition.engine import FacePipeline
from core.registry import Registry

log = logging.getLogger(__name__)

DEMO_ACTOR = "demo-setup"

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


def ensure_demo_registry(registry: Registry, pipeline: FacePipeline, models_dir: Path,
                         progress: Progress | None = None, cancel: Cancel | None = None) -> bool:
    """Enroll and train the demo people if the registry is empty; return whether it did.

    ``cancel()`` is polled between photos and training steps; a cancelled training leaves no model.

    Only a registry with no HR accounts is bootstrapped: the demo enrolls and activates without HR's
    signature, which is fine for a brand-new (unsigned) registry and never once HR owns it.

    Raises
    ------
    ModelError
        If the training run's model was not activated (its checks failed), or it was cancelled.
    """
    from core.registry.accounts import has_accounts

    if registry.list_operators():
        return False
    if has_accounts(registry):
        log.warning("demo: the registry is empty but has HR accounts; the demo does not enroll into it")
        return False
    from core.assets import ensure_seed_assets
    from core.registry.enrollment import Enroller
    from core.registry.training import retrain

    report = progress or (lambda fraction, message: None)
    dataset = ensure_seed_assets().dataset / "train"
    log.info("empty registry: enrolling the demo people from %s", dataset)
    results = Enroller(registry, pipeline).import_dataset(
        dataset, actor=DEMO_ACTOR, progress=lambda f, m: report(0.7 * f, f"enrolling the demo people: {m}"),
        cancel=cancel)
    accepted = sum(len(r.accepted) for r in results.values())
    log.info("demo: %d people, %d photos enrolled", len(results), accepted)
    version = retrain(registry, pipeline, models_dir, actor=DEMO_ACTOR,
                      progress=lambda f, m: report(0.7 + 0.3 * f, f"training: {m}"), cancel=cancel)
    if not version.active:
        raise ModelError(f"The demo model was not activated: {version.notes}")
    report(1.0, f"demo ready: {len(results)} people, {accepted} photos, model version {version.id}")
    return True
