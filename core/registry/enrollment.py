"""Enrollment: operators' photos through the quality gate and the duplicate check into the registry.

:class:`Enroller` takes photos (files, encoded bytes or camera frames), runs each through the quality
gate (:mod:`core.vision.quality`), embeds the faces that pass, and stores the encoded image, its quality
figures and its embedding (tagged with the embedder's name and version) for one operator in **one
transaction**: either every accepted photo of the call is enrolled, or none is.

Who may enroll
--------------
Enrolling is an HR action.  The :class:`Enroller` does not ask for the HR passphrase: the caller (CLI,
GUI) checks it with :func:`core.registry.security.authorize_hr` *before* calling, and passes the HR actor's name
as ``actor``; every change is audited by the registry under that name.

One person, one identity
------------------------
Before a **new** operator is created, the faces of the accepted photos are compared with every
enrolled person (suspended ones included: a suspended operator must not come back under a second
id).  For each enrolled person the distance of each new photo to that person's nearest enrolled
embedding is taken, and the person matches if the **median** over the new photos is within the
duplicate threshold: the active model's calibrated open-set threshold when there is one (the
distance within which the gate itself would accept the face as that person), else
:data:`DEFAULT_DUPLICATE_THRESHOLD`.  A match is refused with :class:`DuplicateIdentity`, naming
the matched employee id, unless ``confirm_duplicate=True`` (twins, a re-hire under a new id); both
outcomes are audited (``duplicate_refused`` / ``duplicate_confirmed``).  The exact same picture
(same SHA-256) is never enrolled for two people, confirmed or not.

Photos added to an **existing** operator must show that operator: each accepted photo's distance to
the operator's nearest enrolled embedding must be within the same threshold, else the photo is
rejected ("does not look like E1001's enrolled photos") and the refusal audited
(``face_mismatch_refused``) — otherwise anyone's face could be added to E1001 and let in as E1001.
A real change of looks (a beard, an accident) is enrolled with ``confirm_new_look=True``, audited as
``face_mismatch_confirmed``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.errors import EnrollmentError, ImageError
from core.recognition.dataset import iter_photos
from core.recognition.openset import Gallery
from core.registry import Registry, RegistryError
from core.vision.imageio import decode_image, to_rgb8
from core.vision.quality import QualityReport, QualityThresholds, check_quality

if TYPE_CHECKING:
    from core.recognition.engine import FacePipeline

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "DuplicateIdentity",
    "DuplicateMatch",
    "EnrollResult",
    "Enroller",
    "EnrollmentCancelled",
    "PhotoInput",
]

PhotoInput = Path | str | bytes | np.ndarray
"""A photo to enroll: a file path, the encoded bytes of a picture, or an RGB camera frame."""

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]

DEFAULT_DUPLICATE_THRESHOLD = 0.9
"""Duplicate threshold when no model is active (median distance of the new photos to a person).

Measured on the 5-celebrity data with this pipeline: a person's val photos lie at a median 0.50–0.66
from their own train photos, and at a median 1.17 or more from every other person's (1.11 for the
two strangers); a person's train photos lie at 1.19 or more from every other person.  0.9 sits in
the middle of that gap."""

JPEG_QUALITY = 95
"""Quality of the JPEG a camera frame is stored as."""


class DuplicateIdentity(EnrollmentError):
    """A new operator's face matches an enrolled person; ``match`` says whom."""

    def __init__(self, message: str, match: DuplicateMatch,
                 rejected: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.match = match
        self.rejected = rejected
        """Every photo of the refused call with its reason (this refusal, or the gate's)."""


class EnrollmentCancelled(EnrollmentError):
    """An import was cancelled; the people enrolled before the cancel stay enrolled."""


@dataclass(frozen=True)
class DuplicateMatch:
    """The enrolled person a new face matched, at which median distance, under which threshold."""

    employee_id: str
    distance: float
    threshold: float
    photos: int
    """How many of the new photos are individually within the threshold of that person."""


@dataclass(frozen=True)
class EnrollResult:
    """What one enrollment call did.

    Attributes
    ----------
    employee_id
        The operator the photos were for.
    operator_id
        Their registry row id, or ``None`` if nothing was enrolled for a new operator.
    created
        Whether the operator was created by this call.
    accepted
        Photo ids of the enrolled photos.
    rejected
        ``(photo name, reason)`` for every photo that was not enrolled; the reason names the check
        that failed ("face size: face too small, 32 px, needs ≥ 40 px — move closer to the camera").
    duplicate_of
        The employee id the face matched, when ``confirm_duplicate`` let it through.
    """

    employee_id: str
    operator_id: int | None
    created: bool
    accepted: tuple[int, ...]
    rejected: tuple[tuple[str, str], ...]
    duplicate_of: str | None = None


@dataclass(frozen=True, eq=False)
class _Prepared:
    """One photo that passed the gate, ready to store."""

    name: str
    data: bytes
    sha256: str
    report: QualityReport
    embedding: np.ndarray


def _encode_jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _load(photo: PhotoInput, index: int) -> tuple[str, bytes, np.ndarray]:
    """``(display name, encoded bytes, RGB array)`` of one input photo.

    Raises
    ------
    ImageError
        If it cannot be read or decoded.
    """
    if isinstance(photo, (str, Path)):
        path = Path(photo)
        name = path.name
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ImageError(f"file not found ({path})") from exc
        except IsADirectoryError as exc:
            raise ImageError("is a folder, not a picture") from exc
        except OSError as exc:
            raise ImageError(f"cannot be read ({exc.strerror or exc})") from exc
        return name, data, decode_image(data, name)
    if isinstance(photo, (bytes, bytearray, memoryview)):
        name = f"photo {index + 1}"
        data = bytes(photo)
        return name, data, decode_image(data, name)
    if isinstance(photo, np.ndarray):
        name = f"frame {index + 1}"
        if photo.ndim not in (2, 3) or photo.size == 0:
            raise ImageError(f"not a picture (array of shape {photo.shape})")
        rgb = to_rgb8(photo)
        return name, _encode_jpeg(rgb), rgb
    raise ImageError(f"not a photo FaceGate can enroll ({type(photo).__name__}); give a file, encoded "
                     "picture bytes or an RGB frame")


class Enroller:
    """Enrolls operators' photos into a registry through the quality gate and the duplicate check.

    Parameters
    ----------
    registry
        The open registry (one per thread).
    pipeline
        A :class:`core.recognition.engine.FacePipeline`; its detector, alignment and embedder are used.
    thresholds
        Quality gate limits; the defaults of :class:`~core.vision.quality.QualityThresholds` when ``None``.
    duplicate_threshold
        Fixed duplicate threshold; ``None`` uses the active model's calibrated threshold, or
        :data:`DEFAULT_DUPLICATE_THRESHOLD` when no model (for this embedder) is active.
    """

    def __init__(self, registry: Registry, pipeline: FacePipeline,
                 thresholds: QualityThresholds | None = None, duplicate_threshold: float | None = None) -> None:
        if duplicate_threshold is not None and not duplicate_threshold > 0:
            raise ValueError("The duplicate threshold must be a positive distance.")
        self.registry = registry
        self.pipeline = pipeline
        self.thresholds = thresholds or QualityThresholds()
        self.duplicate_threshold = duplicate_threshold

    # ------------------------------------------------------------------------------ single photos

    def check(self, photo: PhotoInput) -> QualityReport:
        """Run the quality gate on one photo without enrolling it (e.g. for a live preview).

        Raises
        ------
        ImageError
            If the photo cannot be read.
        """
        return check_quality(_load(photo, 0)[2], self.pipeline, self.thresholds)

    def _prepare(self, photo: PhotoInput, index: int, employee_id: str, operator_id: int | None,
                 seen: dict[str, str], largest_face: bool = False) -> _Prepared | tuple[str, str]:
        """Read, gate and embed one photo: a :class:`_Prepared`, or ``(name, reason)`` if rejected.

        ``seen`` maps the SHA-256 of the pictures already taken in this call to their names;
        ``largest_face`` is passed to :func:`~core.vision.quality.check_quality`.
        """
        fallback = Path(photo).name if isinstance(photo, (str, Path)) else f"photo {index + 1}"
        try:
            name, data, rgb = _load(photo, index)
        except ImageError as exc:
            return fallback, str(exc).removeprefix(f"{fallback}: ")
        digest = hashlib.sha256(data).hexdigest()
        # The same picture twice (checked before the gate: re-importing a folder costs only hashing).
        if digest in seen:
            return name, f"the same picture as {seen[digest]} in this batch"
        owners = self.registry.find_photos(digest)
        mine = [p for p in owners if p.operator_id == operator_id]
        if mine:
            return name, f"this picture is already enrolled for {employee_id} (photo {mine[0].id})"
        if owners:
            other = self.registry.get_operator(owners[0].operator_id).employee_id
            return name, (f"this exact picture is already enrolled for {other} (photo {owners[0].id}); "
                          "one person, one identity")
        seen[digest] = name
        try:
            report = check_quality(rgb, self.pipeline, self.thresholds, largest_face=largest_face)
        except ImageError as exc:
            return name, str(exc)
        if not report.passed:
            return name, report.reason
        assert report.detection is not None
        embedding = np.asarray(self.pipeline.embed(rgb, [report.detection])[0], dtype=np.float32)
        return _Prepared(name, data, digest, report, embedding)

    # ---------------------------------------------------------------------------------- duplicates

    def duplicate_threshold_in_force(self) -> float:
        """The distance within which a new face counts as an enrolled person (see the module doc)."""
        if self.duplicate_threshold is not None:
            return float(self.duplicate_threshold)
        active = self.registry.active_model()
        if active is not None and active.embedder == self.pipeline.embedder.name \
                and active.embedder_version == self.pipeline.embedder.version:
            threshold = active.metrics.get("threshold")
            if isinstance(threshold, (int, float)) and threshold > 0:
                return float(threshold)
        return DEFAULT_DUPLICATE_THRESHOLD

    def find_duplicate(self, embeddings: np.ndarray, *, exclude: str | None = None) -> DuplicateMatch | None:
        """The enrolled person whose face these embeddings show, if any.

        Parameters
        ----------
        embeddings
            ``(n, d)`` embeddings of one (new) person's photos.
        exclude
            An employee id to leave out of the comparison.

        Returns
        -------
        DuplicateMatch or None
            The closest enrolled person if the median distance of the photos to them is within
            :meth:`duplicate_threshold_in_force`, else ``None``.
        """
        x_new = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if len(x_new) == 0:
            return None
        x, labels, _ = self.registry.embeddings(self.pipeline.embedder.version,
                                                embedder=self.pipeline.embedder.name, active_only=False)
        keep = np.asarray([label != exclude for label in labels], dtype=bool)
        if len(x) == 0 or not keep.any():
            return None
        gallery = Gallery(x[keep], np.asarray(labels)[keep], k=1)
        distances = gallery.distances(x_new)  # (n_new, n_people): each photo to each person's nearest
        score = np.median(distances, axis=0)
        best = int(np.argmin(score))
        threshold = self.duplicate_threshold_in_force()
        if score[best] > threshold:
            return None
        return DuplicateMatch(str(gallery.identities[best]), float(score[best]), threshold,
                              int(np.sum(distances[:, best] <= threshold)))

    # ---------------------------------------------------------------------------------- enrollment

    def enroll_photos(
        self,
        employee_id: str,
        name: str,
        department: str,
        photos: Sequence[PhotoInput],
        *,
        actor: str,
        confirm_duplicate: bool = False,
        confirm_new_look: bool = False,
        source: Literal["file", "camera"] | str = "file",
        progress: Progress | None = None,
        cancel: Cancel | None = None,
    ) -> EnrollResult:
        """Enroll photos of one operator, creating the operator if the employee id is new.

        The caller must have checked the HR passphrase (:func:`core.registry.security.authorize_hr`).

        Parameters
        ----------
        employee_id
            The plant's employee id.
        name, department
            Used only when the operator is new.
        photos
            Files, encoded picture bytes, or RGB ``uint8`` frames (stored as JPEG).
        actor
            The HR user, for the audit trail.
        confirm_duplicate
            Enroll a new operator even though their face matches an enrolled person (audited).
        confirm_new_look
            Add photos to an existing operator even though they do not look like the operator's enrolled
            photos (a real change of looks; audited).  Without it such photos are rejected.
        source
            ``"file"`` or ``"camera"`` (or e.g. ``"camera:hr-desk"``); stored with each photo as
            ``"<source>:<photo name>"``.  Camera photos get the current time as capture time.
        progress, cancel
            ``progress(fraction, message)`` per photo; ``cancel()`` is polled between photos and
            raises :class:`EnrollmentCancelled` (nothing of this call is stored).

        Returns
        -------
        EnrollResult
            Accepted photo ids and ``(photo, reason)`` for each rejected photo.  When no photo passes
            the gate, nothing is stored (a new operator is not created).

        Raises
        ------
        DuplicateIdentity
            A new operator's face matches an enrolled person and ``confirm_duplicate`` is false.
        RegistryError
            The registry refused the change (e.g. it is busy or read-only).
        """
        employee_id = str(employee_id).strip()
        if not employee_id:
            raise EnrollmentError("An operator needs a non-empty employee id.")

        def before(i: int) -> None:
            if cancel is not None and cancel():
                raise EnrollmentCancelled(f"Enrollment of {employee_id} was cancelled; nothing was stored.")
            if progress is not None:
                progress(i / max(len(photos), 1), f"{employee_id}: photo {i + 1} of {len(photos)}")

        operator_id, prepared, rejected = self._gate_all(employee_id, photos, before)
        if operator_id is not None and prepared:
            prepared = self._same_face(employee_id, prepared, rejected, actor=actor, confirm=confirm_new_look)
        result = self._commit(employee_id, operator_id, name, department, prepared, rejected, actor=actor,
                              confirm_duplicate=confirm_duplicate, source=source)
        if progress is not None:
            progress(1.0, f"{employee_id}: {len(result.accepted)} accepted, {len(result.rejected)} rejected")
        return result

    def _gate_all(self, employee_id: str, photos: Sequence[PhotoInput], before: Callable[[int], None],
                  largest_face: bool = False) -> tuple[int | None, list[_Prepared], list[tuple[str, str]]]:
        """The operator's row id (None if new), and each photo prepared or rejected with its reason.

        ``before(i)`` runs before photo ``i`` (progress, and cancel by raising).
        """
        operator_id = self._existing(employee_id)
        seen: dict[str, str] = {}
        prepared: list[_Prepared] = []
        rejected: list[tuple[str, str]] = []
        for i, photo in enumerate(photos):
            before(i)
            item = self._prepare(photo, i, employee_id, operator_id, seen, largest_face)
            if isinstance(item, _Prepared):
                prepared.append(item)
            else:
                rejected.append(item)
        return operator_id, prepared, rejected

    def _same_face(self, employee_id: str, kept: list[_Prepared], rejected: list[tuple[str, str]], *,
                   actor: str, confirm: bool) -> list[_Prepared]:
        """The photos of ``kept`` that show the existing operator ``employee_id``; the others go to
        ``rejected`` with their reason (and the refusal is audited), unless ``confirm``."""
        x, labels, _ = self.registry.embeddings(self.pipeline.embedder.version,
                                                embedder=self.pipeline.embedder.name, active_only=False)
        own = np.asarray([label == employee_id for label in labels], dtype=bool)
        if not own.any():
            return kept  # no embedding to compare with yet (enrolled with another embedder, say)
        gallery = Gallery(x[own], np.asarray(labels)[own], k=1)
        distances = gallery.distances(np.stack([item.embedding for item in kept]))[:, 0]
        threshold = self.duplicate_threshold_in_force()
        far = [(item, float(d)) for item, d in zip(kept, distances) if d > threshold]
        if not far:
            return kept
        record = {"photos": [item.name for item, _ in far], "distances": [round(d, 4) for _, d in far],
                  "threshold": round(threshold, 4)}
        if confirm:
            self.registry.audit(actor, "face_mismatch_confirmed", employee_id, None, record)
            return kept
        self.registry.audit(actor, "face_mismatch_refused", employee_id, None, record)
        for item, d in far:
            rejected.append((item.name, f"{item.name}: does not look like {employee_id}'s enrolled photos (distance "
                             f"{d:.2f}, more than {threshold:.2f}); enroll it under the person it shows, or "
                             "confirm a real change of looks"))
        return [item for item in kept if all(item is not f for f, _ in far)]

    def _existing(self, employee_id: str) -> int | None:
        try:
            return self.registry.get_operator(employee_id).id
        except RegistryError:
            return None  # unknown id (a real database problem resurfaces on the next write)

    def _commit(self, employee_id: str, operator_id: int | None, name: str, department: str,
                kept: list[_Prepared], rejected: list[tuple[str, str]], *, actor: str,
                confirm_duplicate: bool, source: str) -> EnrollResult:
        reg = self.registry
        if not kept:
            return EnrollResult(employee_id, operator_id, False, (), tuple(rejected))

        match = None
        if operator_id is None:
            match = self.find_duplicate(np.stack([item.embedding for item in kept]))
        audit_match = None
        if match is not None:
            audit_match = {"matches": match.employee_id, "distance": round(match.distance, 4),
                           "threshold": round(match.threshold, 4), "photos": len(kept),
                           "photos_within_threshold": match.photos}
            if not confirm_duplicate:
                reg.audit(actor, "duplicate_refused", employee_id, None, audit_match)
                message = (
                    f"Refused: the face of new operator {employee_id} matches enrolled operator "
                    f"{match.employee_id} (median distance {match.distance:.2f}, within {match.threshold:.2f}). "
                    "One person, one identity: add the photos to the existing operator, or confirm that "
                    "this is a different person to enroll anyway.")
                refused = tuple(rejected) + tuple((item.name, message) for item in kept)
                raise DuplicateIdentity(message, match, refused)

        embedder = self.pipeline.embedder
        augmented = self._augmented(reg, operator_id, kept)
        now = datetime.now(UTC) if source.startswith("camera") else None
        with reg.transaction():
            created = operator_id is None
            if operator_id is None:
                operator_id = reg.add_operator(employee_id, str(name).strip() or employee_id, department,
                                               actor=actor)
            if audit_match is not None:
                reg.audit(actor, "duplicate_confirmed", employee_id, None, audit_match)
            photo_ids = [reg.add_photo(operator_id, item.data, f"{source}:{item.name}", now,
                                       item.report.figures(), actor=actor) for item in kept]
            reg.add_embeddings([(pid, item.embedding) for pid, item in zip(photo_ids, kept)],
                               embedder.name, embedder.version)
            for pid, vectors in zip(photo_ids, augmented):
                if vectors is not None:
                    reg.add_augmented(pid, vectors, embedder.name, embedder.version)
            for pid, item in zip(photo_ids, kept):
                if item.report.largest_face_chosen:  # the bystanders' faces were left out: say so
                    assert item.report.detection is not None
                    reg.audit(actor, "largest_face_chosen", employee_id, None, {
                        "photo_id": pid, "source": f"{source}:{item.name}",
                        "faces": 1 + len(item.report.others), "box": list(item.report.detection.box),
                        "area_ratio": round(item.report.largest_face_ratio or 0.0, 4),
                        "other_boxes": [list(d.box) for d in item.report.others]})
        log.info("enrolled %d photos of %s (%d rejected)", len(photo_ids), employee_id, len(rejected))
        return EnrollResult(employee_id, operator_id, created, tuple(photo_ids), tuple(rejected),
                            match.employee_id if match is not None else None)

    def _augmented(self, reg: Any, operator_id: int | None, kept: list[_Prepared]) -> list[np.ndarray | None]:
        """Augmented embeddings of each kept photo, for someone who will have fewer than
        :data:`~core.recognition.augment.AUGMENT_BELOW` photos (issue 12), else ``None`` each.

        Computed here, once, before the transaction: retraining only reads them.
        """
        from core.recognition.augment import AUGMENT_BELOW, augmented_embeddings

        have = 0
        if operator_id is not None:
            have = reg.db.conn.execute("SELECT COUNT(*) FROM photos WHERE operator_id = ?",
                                       [operator_id]).fetchone()[0]
        if not kept or have + len(kept) >= AUGMENT_BELOW:
            return [None] * len(kept)
        faces = [item.report.aligned for item in kept if item.report.aligned is not None]
        if len(faces) != len(kept):
            return [None] * len(kept)
        vectors = augmented_embeddings(self.pipeline.embedder, np.stack(faces))
        return list(vectors)

    # --------------------------------------------------------------------------------------- import

    def import_dataset(
        self,
        root: Path | str,
        *,
        actor: str,
        progress: Progress | None = None,
        cancel: Cancel | None = None,
        confirm_duplicate: bool = False,
        largest_face: bool = False,
    ) -> dict[str, EnrollResult]:
        """Enroll a folder-per-person dataset: ``root/<person>/<photo>``.

        The person folder's name is both the employee id and the name.  Every photo goes through the
        quality gate; a photo that cannot be read or fails the gate is reported and skipped, and
        never stops the import.  Each person is committed in their own transaction, so a cancelled
        import keeps the people finished before it.  A new person whose face matches an enrolled
        one is not enrolled (unless ``confirm_duplicate``): all their photos are reported rejected
        with the reason, and the import goes on.  Running it again over the same folder enrolls
        only the photos that are new.  Files directly under ``root`` belong to nobody: they are
        logged and skipped.

        With ``largest_face``, a photo showing several faces is not refused outright: its largest face
        is checked and enrolled if it is clearly the subject (see
        :func:`~core.vision.quality.check_quality`).  The original photo is stored, and each such photo
        is audited as ``largest_face_chosen`` (photo id, number of faces, the chosen box, the area
        ratio to the next face, the other boxes).

        Returns
        -------
        dict of str to EnrollResult
            Per person (folder name), in folder order.

        Raises
        ------
        EnrollmentError
            If ``root`` is not a folder.
        EnrollmentCancelled
            If ``cancel()`` returned true (people finished before stay enrolled).
        """
        root = Path(root)
        if not root.is_dir():
            raise EnrollmentError(f"{root} is not a folder. Give a folder with one sub-folder per person "
                                  "(named by employee id) holding that person's photos.")
        groups: dict[str, list[Path]] = {}
        for person, path in iter_photos(root):
            groups.setdefault(person, []).append(path)
        loose = groups.pop("", [])
        for path in loose:
            log.warning("import: %s is not inside a person's folder; skipped", path.name)
        total = sum(len(paths) for paths in groups.values())
        done = 0
        results: dict[str, EnrollResult] = {}
        for person, paths in groups.items():
            def before(i: int, person: str = person, paths: list[Path] = paths, done: int = done) -> None:
                if cancel is not None and cancel():
                    raise EnrollmentCancelled(f"Import cancelled after {len(results)} of {len(groups)} people; "
                                              "those are enrolled, the rest is not.")
                if progress is not None:
                    progress((done + i) / max(total, 1), f"{person}/{paths[i].name}")

            operator_id, prepared, rejected = self._gate_all(person, paths, before, largest_face)
            done += len(paths)
            if operator_id is not None and prepared:  # more photos of someone enrolled: they must look like them
                prepared = self._same_face(person, prepared, rejected, actor=actor, confirm=False)
            try:
                results[person] = self._commit(person, operator_id, person, "", prepared, rejected, actor=actor,
                                               confirm_duplicate=confirm_duplicate, source="file")
            except DuplicateIdentity as exc:
                results[person] = EnrollResult(person, None, False, (), exc.rejected)
        if progress is not None:
            accepted = sum(len(r.accepted) for r in results.values())
            progress(1.0, f"{len(results)} people, {accepted} photos accepted, {total - accepted} rejected")
        return results
