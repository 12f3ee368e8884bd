"""The recognition engine: image → faces → aligned crops → embeddings → three classifiers → decision.

- :class:`FacePipeline` turns an RGB image into detections and L2-normalised embeddings.
- :class:`RecognitionModel` holds the three fitted classifiers, the enrolled gallery and its calibrated
  threshold, and turns embeddings into per-model votes and an open-set :class:`~core.types.Decision`.
- :class:`Recognizer` puts the two together for callers (CLI, monitor, GUI worker).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FaceError, ModelError
from core.recognition.legacy import install_legacy_names
from core.recognition.openset import Calibration, Gallery, calibrate, gate
from core.types import UNKNOWN, Decision, Detection, FaceResult, ModelVote
from core.vision.align import ALIGNED_SIZE, align_face

log = logging.getLogger(__name__)

MODEL_NAMES = ("svc", "stacker", "super_learner")
POLICIES = (*MODEL_NAMES, "all")
BUNDLE_FORMAT = 1

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


class FacePipeline:
    """Detector + alignment + embedder, loaded lazily in the thread that first uses them.

    Parameters
    ----------
    detector, embedder
        The parts; ``None`` makes those of ``backend`` (:mod:`core.vision.backends`).
    align_margin
        Margin of the similarity alignment.
    backend
        ``onnx`` or ``tf`` for the parts made here; ``None`` is :func:`~core.vision.backends.default_backend`
        (ONNX Runtime unless ``$FACEGATE_BACKEND`` says otherwise).
    """

    def __init__(self, detector: Any = None, embedder: Any = None, align_margin: float = 0.05,
                 backend: str | None = None) -> None:
        from core.vision.backends import check_backend, default_backend, make_detector, make_embedder

        self.requested_backend = check_backend(backend or default_backend())
        if detector is None:
            detector = make_detector(self.requested_backend)
        if embedder is None:
            embedder = make_embedder(self.requested_backend)
        self.detector = detector
        self.embedder = embedder
        self.align_margin = align_margin

    @property
    def backend(self) -> str:
        """The embedder's runtime (``onnx``, or ``tf``, also after a fallback); recorded in model versions."""
        from core.vision.backends import backend_of

        return backend_of(self.embedder)

    def detector_like(self, min_face_size: int) -> Any:
        """A detector of this pipeline's backend that ignores faces smaller than ``min_face_size``.

        Shares the networks of :attr:`detector` (each backend builds them once per process).
        """
        from core.vision.backends import backend_of, make_detector

        det = self.detector
        return make_detector(backend_of(det), min_face_size=min_face_size,
                             max_side=getattr(det, "max_side", 1280),
                             min_confidence=getattr(det, "min_confidence", 0.8))

    def fallback_reasons(self) -> list[str]:
        """Why a part runs on TensorFlow although ONNX was asked for (empty when nothing fell back)."""
        return [r for r in (getattr(self.detector, "fallback_reason", None),
                            getattr(self.embedder, "fallback_reason", None)) if r]

    @property
    def signature(self) -> str:
        """Identifies everything that shapes an embedding (for caches and model sidecars)."""
        det = self.detector
        return (
            f"{self.embedder.name}@{self.embedder.version}|align=similarity5:{self.align_margin}"
            f"|mtcnn:min{getattr(det, 'min_face_size', '?')}:max{getattr(det, 'max_side', '?')}"
            f":conf{getattr(det, 'min_confidence', '?')}"
        )

    def align(self, image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
        """Aligned ``(n, 160, 160, 3)`` uint8 crops for ``detections``."""
        if not detections:
            return np.zeros((0, ALIGNED_SIZE, ALIGNED_SIZE, 3), np.uint8)
        return np.stack([align_face(image, d, ALIGNED_SIZE, self.align_margin) for d in detections])

    def embed(self, image: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
        """Embeddings ``(n, 128)`` of ``detections`` in ``image``, batched in one call."""
        return np.asarray(self.embedder.embed(self.align(image, detections)), dtype=np.float32)

    def faces(self, image: np.ndarray) -> tuple[list[Detection], np.ndarray]:
        """All faces in ``image`` and their embeddings."""
        detections = self.detector.detect(image)
        return detections, self.embed(image, detections)

    def single_face(self, image: np.ndarray, name: str = "image") -> tuple[Detection, np.ndarray]:
        """The one face of a photo that must show exactly one person.

        Raises
        ------
        FaceError
            If no face or several faces are found.
        """
        detections = self.detector.detect(image)
        if not detections:
            raise FaceError(f"{name}: no face found.")
        if len(detections) > 1:
            raise FaceError(f"{name}: {len(detections)} faces found; the photo must show one person only.")
        return detections[0], self.embed(image, detections)[0]


@dataclass(frozen=True)
class Policy:
    """How a decision is made.

    Attributes
    ----------
    decider
        ``"svc"``, ``"stacker"``, ``"super_learner"``: that model must name the gallery's nearest person
        with at least ``min_probability``; ``"all"``: all three must.
    min_probability
        The deciding model's probability floor.
    min_margin
        Second-nearest identity must be at least this much further than the nearest.
    threshold
        Overrides the calibrated distance threshold when set.
    """

    decider: str = "all"
    min_probability: float = 0.5
    min_margin: float = 0.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.decider not in POLICIES:
            raise ModelError(f"Unknown decision policy {self.decider!r}; choose one of {', '.join(POLICIES)}.")
        if not 0.0 <= self.min_probability <= 1.0:
            raise ModelError("The minimum probability must lie between 0 and 1.")
        if not 0.0 <= self.min_margin <= 2.0:
            raise ModelError("The minimum margin must lie between 0 and 2 (distances between faces lie in 0-2).")
        if self.threshold is not None and not 0.0 < self.threshold <= 2.0:
            raise ModelError("The distance threshold must be above 0 and at most 2 (distances between faces "
                             "lie in 0-2).")


@dataclass
class RecognitionModel:
    """Fitted classifiers + gallery + calibrated threshold: everything a decision needs."""

    classifiers: dict[str, Any]
    gallery: Gallery
    calibration: Calibration
    policy: Policy = field(default_factory=Policy)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Short identifier stored with every decision."""
        return str(self.metadata.get("version", "unversioned"))

    @property
    def threshold(self) -> float:
        """Distance threshold in force (policy override or calibrated)."""
        return self.policy.threshold if self.policy.threshold is not None else self.calibration.threshold

    def enrolled_probability(self, distances: float | np.ndarray) -> np.ndarray:
        """The gate's probability that faces at ``distances`` from the gallery are enrolled at all.

        From the calibration's logistic fit (0.5 at the calibrated threshold, see
        :mod:`core.recognition.openset`), whatever threshold the policy puts in force.
        """
        return self.calibration.enrolled_probability(distances)

    def probabilities(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Each model's ``(n, n_classes)`` probabilities, columns in the model's ``classes_`` order."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        return {name: clf.predict_proba(x) for name, clf in self.classifiers.items()}

    def decide(self, embeddings: np.ndarray) -> list[tuple[tuple[ModelVote, ...], dict[str, dict[str, float]], Decision, str]]:
        """Votes, per-model probabilities, the decision and the nearest identity for each embedding."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if len(x) == 0:
            return []
        # Class names and the set of people the classifiers know, once per model rather than per
        # face: at 1,000 people that is 3,000 str() calls.  Keyed on the classes_ arrays themselves
        # (held, so their ids cannot be reused), it follows a classifier that is swapped or refitted.
        arrays = [clf.classes_ for clf in self.classifiers.values()]
        cached = self.__dict__.get("_class_names")
        if cached is None or len(cached[0]) != len(arrays) or any(a is not b for a, b in zip(cached[0], arrays)):
            names = {name: [str(c) for c in clf.classes_] for name, clf in self.classifiers.items()}
            cached = (arrays, names, frozenset(c for listed in names.values() for c in listed))
            self.__dict__["_class_names"] = cached
        _, class_names, known = cached
        probs = self.probabilities(x)
        nearest, dist, margin = self.gallery.nearest(x)
        out = []
        for i in range(len(x)):
            votes = []
            table: dict[str, dict[str, float]] = {}
            for name, p in probs.items():
                row = p[i]
                table[name] = dict(zip(class_names[name], row.tolist()))
                j = int(np.argmax(row))
                votes.append(ModelVote(name, class_names[name][j], float(row[j])))
            decision = self._decide_one(str(nearest[i]), float(dist[i]), float(margin[i]), votes, known)
            out.append((tuple(votes), table, decision, str(nearest[i])))
        return out

    def _decide_one(self, nearest: str, distance: float, margin: float, votes: list[ModelVote],
                    known: frozenset[str] | None = None) -> Decision:
        decision = gate(nearest, distance, margin, self.threshold, self.policy.min_margin)
        if not decision.accepted:
            return decision
        deciders = [v for v in votes if self.policy.decider in ("all", v.model)]
        if known is None:
            known = frozenset(str(c) for clf in self.classifiers.values() for c in clf.classes_)
        if nearest not in known:
            # Enrolled after the last training run: the gallery recognises them, the models can't vote.
            return replace(decision, reason=decision.reason + "; classifiers not retrained yet (gallery only)")
        for vote in deciders:
            if vote.identity != nearest:
                return replace(decision, identity=UNKNOWN, accepted=False,
                               reason=f"{vote.model} says {vote.identity}, the gallery says {nearest}")
            if vote.probability < self.policy.min_probability:
                return replace(decision, identity=UNKNOWN, accepted=False,
                               reason=f"{vote.model} is unsure ({vote.probability:.2f} < "
                               f"{self.policy.min_probability:.2f})")
        agree = "all three models agree" if self.policy.decider == "all" else f"{self.policy.decider} agrees"
        return replace(decision, reason=f"{decision.reason}; {agree}")

    # -- persistence -------------------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write the model as ``model.joblib`` + ``model.json`` into ``directory`` atomically."""
        import joblib
        import sklearn

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".model-", dir=directory.parent))
        try:
            payload = {"classifiers": self.classifiers, "gallery_x": self.gallery.embeddings,
                       "gallery_y": self.gallery.labels, "gallery_k": self.gallery.k,
                       "calibration": self.calibration, "policy": self.policy}
            joblib.dump(payload, tmp / "model.joblib")
            sidecar = {"format": BUNDLE_FORMAT, "program": "facegate", "sklearn": sklearn.__version__,
                       "numpy": np.__version__, **self.metadata}
            (tmp / "model.json").write_text(json.dumps(sidecar, indent=2, default=str))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: Path, expect_signature: str | None = None) -> RecognitionModel:
        """Load a model written by :meth:`save`; refuse files this program did not write.

        ``model.joblib`` is read by :func:`core.recognition.safe_load.load_model_file`, which
        unpickles only the classes a trained model holds: a crafted file cannot run code.

        Raises
        ------
        ModelError
            If ``model.json`` is missing or foreign, the model was trained with another
            scikit-learn or pipeline, or ``model.joblib`` is damaged or holds anything FaceGate
            never writes.
        """
        import sklearn

        from core.recognition.safe_load import load_model_file

        directory = Path(directory)
        try:
            meta = json.loads((directory / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{directory} is not a FaceGate model (no readable model.json).") from exc
        if meta.get("program") != "facegate" or meta.get("format") != BUNDLE_FORMAT:
            raise ModelError(f"{directory} was not written by this version of FaceGate; train it again.")
        if meta.get("sklearn") != sklearn.__version__:
            raise ModelError(f"{directory} was trained with scikit-learn {meta.get('sklearn')}, this is "
                             f"{sklearn.__version__}; train it again.")
        if expect_signature and meta.get("signature") != expect_signature:
            raise ModelError(f"{directory} was trained on embeddings of another pipeline; train it again.")
        install_legacy_names()  # old module names stay importable as before; load_model_file maps them itself
        payload = load_model_file(directory / "model.joblib")
        try:
            gallery = Gallery(payload["gallery_x"], payload["gallery_y"], k=payload["gallery_k"])
            classifiers, calibration, policy = payload["classifiers"], payload["calibration"], payload["policy"]
            # Only allowed classes can be in there, but not necessarily in the right places.
            if not (isinstance(classifiers, dict) and isinstance(calibration, Calibration)
                    and isinstance(policy, Policy)):
                raise TypeError("its parts are not a model's")
        except Exception as exc:  # a dict of the wrong shape fails in many ways
            raise ModelError(f"{directory}/model.joblib is damaged ({exc}); train the model again.") from exc
        meta = {k: v for k, v in meta.items() if k not in ("format", "program", "sklearn", "numpy")}
        return cls(classifiers, gallery, calibration, policy, meta)


def train_model(
    x: np.ndarray,
    y: Sequence[str] | np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    augmented: np.ndarray | None = None,
    models: Sequence[str] = MODEL_NAMES,
    policy: Policy | None = None,
    gallery_k: int = 1,
    target_far: float = 0.01,
    deep: bool = False,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    metadata: dict[str, Any] | None = None,
) -> RecognitionModel:
    """Fit the classifiers, build the gallery and calibrate its threshold.

    The classifiers are fitted in one :func:`core.recognition.classifiers.shared_fits` block, so a base model
    that two of them cross-validate identically is trained once (the stacker reuses the SVC's
    linear SVM, the Super Learner the stacker's logistic regression, k-NN and naive Bayes).  Above
    :data:`core.recognition.classifiers.MAX_THESIS_CLASSES` people the stacker and the Super Learner fit their
    base models' folds side by side on every core (``n_jobs=-1``; same results).  The SVC keeps its
    SVM on one thread: concurrent liblinear solves share a random generator, and models must be
    reproducible to the bit.
    ``groups`` names the photo of each row, ``augmented`` marks the rows that are augmented copies
    (:mod:`core.recognition.augment`): the classifiers train on every row, with a photo and its copies
    held out together by their cross-validations; the gallery and its threshold use real photos only.
    ``metadata["fit_seconds"]`` holds each classifier's seconds, ``"calibrate_seconds"`` the open-set
    calibration's.

    Raises
    ------
    ModelError
        On too little data; ``TrainingCancelled`` (a ModelError) if ``cancel()`` turns true.
    """
    from core.recognition import classifiers

    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(y).astype(str)
    report = progress or (lambda f, m: None)
    fitted: dict[str, Any] = {}
    t0 = time.perf_counter()
    timings = {}
    # Threads only pay off on large galleries; results do not depend on them.
    large = len(np.unique(labels)) > classifiers.MAX_THESIS_CLASSES
    with classifiers.shared_fits():
        for i, name in enumerate(models):
            def sub(frac: float, msg: str, i: int = i, name: str = name) -> None:
                report((i + frac) / (len(models) + 0.2), f"{name}: {msg}")

            start = time.perf_counter()
            report(i / (len(models) + 0.2), f"training {name}")
            params: dict[str, Any] = {"deep": True} if (deep and name == "super_learner") else {}
            if large and name != "svc":
                params["n_jobs"] = -1
            fitted[name] = classifiers.make_classifier(name, **params).fit(x, labels, groups=groups, progress=sub,
                                                                           cancel=cancel)
            timings[name] = round(time.perf_counter() - start, 3)
    report(len(models) / (len(models) + 0.2), "calibrating the open-set threshold")
    start = time.perf_counter()
    real = np.ones(len(x), bool) if augmented is None else ~np.asarray(augmented, bool)
    gallery = Gallery(x[real], labels[real], k=gallery_k)
    try:
        calibration = calibrate(gallery, target_far=target_far)
    except ModelError:
        if real.all():
            raise
        # Fewer than two people have two real photos: the genuine distances can only come from the
        # augmented copies, much closer than two real photos of a person are, so the threshold is
        # strict (on the 5-celebrity set with one photo each: 48 % of genuine faces accepted, every
        # stranger refused; the impostor-limited threshold accepted 66 % but let 7 % of strangers in).
        # Said in the metadata.
        calibration = calibrate(Gallery(x, labels, k=gallery_k), target_far=target_far)
        metadata = {**(metadata or {}), "calibrated_on_augmented": True}
    calibrate_seconds = round(time.perf_counter() - start, 3)
    meta = {"version": time.strftime("%Y%m%d-%H%M%S"), "classes": sorted(set(labels)), "n_embeddings": int(real.sum()),
            "fit_seconds": timings, "calibrate_seconds": calibrate_seconds,
            "train_seconds": round(time.perf_counter() - t0, 3),
            "calibration": calibration.summary(), **(metadata or {})}
    report(1.0, "done")
    return RecognitionModel(fitted, gallery, calibration, policy or Policy(), meta)


class Recognizer:
    """A face pipeline and a trained model: RGB image in, :class:`FaceResult` per face out."""

    def __init__(self, model: RecognitionModel, pipeline: FacePipeline | None = None) -> None:
        self.model = model
        self.pipeline = pipeline or FacePipeline()

    def recognize(self, image: np.ndarray) -> list[FaceResult]:
        """Detect, align, embed and decide every face in ``image`` (uint8 RGB)."""
        detections, embeddings = self.pipeline.faces(image)
        return self.results(detections, embeddings)

    def results(self, detections: Sequence[Detection], embeddings: np.ndarray) -> list[FaceResult]:
        """Decisions for already-embedded detections."""
        out = []
        for det, (votes, table, decision, nearest) in zip(detections, self.model.decide(embeddings)):
            enrolled = float(self.model.enrolled_probability(decision.distance))
            out.append(FaceResult(det, votes, table, decision, nearest, self.model.version, enrolled))
        return out
