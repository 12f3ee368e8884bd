"""`facegate import --largest-face`: the largest face of a photo with bystanders is enrolled, when it is
clearly the subject, and audited — on real photos with the real MTCNN and FaceNet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.registry import Registry
from core.registry.enrollment import Enroller
from core.vision.imageio import read_image
from core.vision.quality import QualityThresholds, check_quality
from tests.conftest import compose, face_crop
from tests.core.conftest import run

HR = "hr:test"
JERRY_WITH_BYSTANDER = "httpsuploadwikimediaorgwikipediacommonst"  # a bystander's face far behind him
ELTON_WITH_CHER = "httpssmediacacheakpinimgcomxfcfcbaeaedda"      # two faces side by side, same size


def save(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    buf.tofile(str(path))
    return path


def train_photo(seed, person: str, prefix: str) -> Path:
    (path,) = [p for p in (seed.dataset / "train" / person).iterdir() if p.name.startswith(prefix)]
    return path


def subject_and_bystander(seed, index: int = 0, bystander: int = 100) -> np.ndarray:
    """Jerry Seinfeld in front (a 260 px wide crop) and Madonna smaller beside him."""
    return compose([face_crop(seed, "jerry_seinfeld", index, size=260),
                    face_crop(seed, "madonna", 1, size=bystander)])


def similar_sizes(seed) -> np.ndarray:
    return compose([face_crop(seed, "jerry_seinfeld", 0, size=220), face_crop(seed, "madonna", 1, size=210)])


@pytest.fixture
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "facegate.db") as registry:
        yield registry


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def test_gate_picks_the_largest_face_only_when_asked_and_clearly_the_subject(seed, pipeline):
    photo = subject_and_bystander(seed)
    assert len(pipeline.detector.detect(photo)) == 2
    plain = check_quality(photo, pipeline)
    assert not plain.passed and plain.failed == ("faces",)
    assert "2 faces found, needs exactly one" in plain.reason  # without the flag: as before

    chosen = check_quality(photo, pipeline, largest_face=True)
    assert chosen.passed, chosen.reason
    assert chosen.largest_face_chosen and len(chosen.others) == 1
    assert chosen.detection is not None and chosen.detection.box[0] < 270  # the face on the left: Jerry
    assert chosen.largest_face_ratio is not None and chosen.largest_face_ratio >= 2
    assert "2 faces found, the largest" in chosen.checks["faces"].message
    figures = chosen.figures()
    assert figures["faces"] == 2 and figures["box"] == list(chosen.detection.box)
    assert figures["other_boxes"] == [list(chosen.others[0].box)]
    # The embedding is the subject's: close to Jerry's face alone, far from Madonna's.
    (emb,) = pipeline.embed(photo, [chosen.detection])
    _, jerry = pipeline.single_face(face_crop(seed, "jerry_seinfeld", 0, size=260))
    _, madonna = pipeline.single_face(face_crop(seed, "madonna", 1, size=100))
    assert distance(emb, jerry) < 0.4 and distance(emb, madonna) > 0.9

    # One face only: the flag changes nothing.
    alone = face_crop(seed, "jerry_seinfeld", 0, size=260)
    a, b = check_quality(alone, pipeline), check_quality(alone, pipeline, largest_face=True)
    assert a.passed and b.passed and not b.largest_face_chosen and a.figures() == b.figures()


def test_faces_of_similar_size_are_refused_with_a_clear_sentence(seed, pipeline):
    for photo in (similar_sizes(seed), read_image(train_photo(seed, "elton_john", ELTON_WITH_CHER))):
        report = check_quality(photo, pipeline, largest_face=True)
        assert not report.passed and report.failed == ("faces",) and report.detection is None
        assert "similar size" in report.reason and "cannot tell who is being enrolled" in report.reason
        assert "needs ≥ 2×" in report.reason


def test_the_other_checks_still_apply_to_the_largest_face(seed, pipeline):
    blurred = cv2.GaussianBlur(face_crop(seed, "jerry_seinfeld", 0, size=260), (0, 0), 4.0)
    photo = compose([blurred, face_crop(seed, "madonna", 1, size=100)])
    report = check_quality(photo, pipeline, largest_face=True)
    assert not report.passed and report.failed == ("sharpness",)  # not the sharp bystander instead
    assert report.checks["faces"].ok and report.largest_face_chosen
    with pytest.raises(ValueError, match="greater than 1"):
        QualityThresholds(min_largest_face_ratio=1.0)
    # A stricter ratio refuses the same photo that the default accepts.
    strict = check_quality(subject_and_bystander(seed), pipeline, QualityThresholds(min_largest_face_ratio=50),
                           largest_face=True)
    assert not strict.passed and "similar size" in strict.reason


def test_import_with_largest_face_enrolls_the_subject_and_audits_it(reg, seed, pipeline, tmp_path):
    root = tmp_path / "hr-photos"
    composed = save(subject_and_bystander(seed), root / "jerry_seinfeld" / "party.png")
    real = train_photo(seed, "jerry_seinfeld", JERRY_WITH_BYSTANDER)
    (root / "jerry_seinfeld" / real.name).write_bytes(real.read_bytes())
    single = min((seed.dataset / "val" / "jerry_seinfeld").iterdir())
    (root / "jerry_seinfeld" / single.name).write_bytes(single.read_bytes())
    save(similar_sizes(seed), root / "madonna" / "group.png")
    enroller = Enroller(reg, pipeline)

    # Without the flag: the two-face photos are refused as today, and nothing is audited for them.
    before = enroller.import_dataset(root, actor=HR)
    assert len(before["jerry_seinfeld"].accepted) == 1
    reasons = dict(before["jerry_seinfeld"].rejected)
    assert set(reasons) == {"party.png", real.name}
    assert all("2 faces found, needs exactly one" in r for r in reasons.values())
    assert not reg.audit_log(action="largest_face_chosen")

    after = enroller.import_dataset(root, actor=HR, largest_face=True)
    jerry = after["jerry_seinfeld"]
    assert len(jerry.accepted) == 2
    assert [name for name, _ in jerry.rejected] == [single.name]  # "already enrolled" from the first run
    stored = {p.source: p for p in reg.list_photos("jerry_seinfeld")}
    assert set(stored) == {f"file:{single.name}", "file:party.png", f"file:{real.name}"}
    # The original photo is stored, bystander and all.
    assert reg.photo_bytes(stored["file:party.png"].id) == composed.read_bytes()
    assert reg.photo_bytes(stored[f"file:{real.name}"].id) == real.read_bytes()
    # Every photo enrolled this way is audited, with the number of faces and the chosen box.
    rows = reg.audit_log(action="largest_face_chosen")
    assert len(rows) == 2 and {r.object for r in rows} == {"jerry_seinfeld"} and {r.actor for r in rows} == {HR}
    by_source = {r.new["source"]: r.new for r in rows}
    party = by_source["file:party.png"]
    assert party["faces"] == 2 and party["photo_id"] == stored["file:party.png"].id
    assert party["box"] == stored["file:party.png"].quality["box"] and len(party["other_boxes"]) == 1
    assert party["area_ratio"] >= 2
    assert by_source[f"file:{real.name}"]["faces"] == 2
    # Enrolled as the intended person: the stored embeddings are Jerry's face, not the bystander's.
    x, _, photo_ids = reg.embeddings(pipeline.embedder.version, embedder=pipeline.embedder.name)
    emb = dict(zip(photo_ids, x))
    _, madonna = pipeline.single_face(face_crop(seed, "madonna", 1, size=100))
    for source in ("file:party.png", f"file:{real.name}"):
        e = emb[stored[source].id]
        assert distance(e, emb[stored[f"file:{single.name}"].id]) < 0.9 and distance(e, madonna) > 0.9
    # Faces of similar size are refused even with the flag, with the sentence saying why.
    (name, reason), = after["madonna"].rejected
    assert name == "group.png" and "similar size" in reason and "cannot tell who is being enrolled" in reason
    assert after["madonna"].operator_id is None
    assert reg.verify() == []


def test_the_duplicate_check_still_applies_to_the_chosen_face(reg, seed, pipeline, tmp_path):
    enroller = Enroller(reg, pipeline)
    enroller.enroll_photos("jerry_seinfeld", "Jerry", "", sorted((seed.dataset / "train" / "jerry_seinfeld")
                                                                 .iterdir())[:5], actor=HR)
    root = tmp_path / "hr-photos"
    save(subject_and_bystander(seed, index=1), root / "E2" / "party.png")
    result = enroller.import_dataset(root, actor=HR, largest_face=True)["E2"]
    assert result.accepted == () and result.operator_id is None
    (_, reason), = result.rejected
    assert "matches enrolled operator jerry_seinfeld" in reason
    assert reg.audit_log(action="duplicate_refused") and not reg.audit_log(action="largest_face_chosen")




def test_cli_largest_face_end_to_end(data, capsys, seed, tmp_path, monkeypatch):
    root = tmp_path / "hr-photos"
    save(subject_and_bystander(seed), root / "E1001" / "party.png")
    code, out, err = run(capsys, "import", str(root))
    assert code == 0 and "2 faces found, needs exactly one" in out and "0 photos accepted" in out, err

    code, out, err = run(capsys, "import", str(root), "--largest-face")
    assert code == 0 and "1 photos accepted, 0 rejected" in out, err
    assert "E1001: party.png: the largest of 2 faces enrolled" in out
    code, out, _ = run(capsys, "audit")
    assert code == 0 and "largest_face_chosen" in out and "admin:hr.lead" in out
    with Registry.open(data / "facegate.db") as reg:
        (row,) = reg.audit_log(action="largest_face_chosen")
        assert row.object == "E1001" and row.actor == "admin:hr.lead" and row.new["faces"] == 2
        assert reg.get_operator("E1001").photos == 1
    code, out, _ = run(capsys, "verify")  # HR signed the state after the import
    assert code == 0, out

    # Faces of similar size stay refused, with the sentence saying why.
    save(similar_sizes(seed), root / "E1002" / "group.png")
    code, out, err = run(capsys, "import", str(root), "--largest-face")
    assert code == 0 and "E1002: faces: 2 faces found and the largest is only" in out, err
    assert "similar size" in out and "0 photos accepted" in out
    # The flag needs HR's login like any import: a wrong passphrase is refused before anything is read.
    monkeypatch.setenv("FACEGATE_HR_PASSPHRASE", "wrong passphrase")
    code, _, err = run(capsys, "import", str(root), "--largest-face")
    assert code == 2 and "passphrase" in err
