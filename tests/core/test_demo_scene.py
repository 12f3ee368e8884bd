"""The demo camera: a deterministic gate scene from the val photos, checked with the real MTCNN."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core.demo.scene import MIN_VISIBLE, PERSONS, DemoScene
from core.types import UNKNOWN, iou

SIZES = [(640, 480), (1280, 720)]


@pytest.fixture(scope="module")
def detector():
    from core.vision.detector import MtcnnDetector

    return MtcnnDetector()


@pytest.fixture(scope="module")
def scenes(detector) -> dict[tuple[int, int], DemoScene]:
    # The first start detects and probes every photo (cached under cache_dir()/demo afterwards); the
    # probing, which the detector test below relies on, is done at the default size only.
    return {size: DemoScene.from_assets(size=size, detector=detector, verify=size == SIZES[0]) for size in SIZES}


def at_gate(scene: DemoScene, loop: int = 0) -> list[int]:
    """One frame per segment, in the middle of the time everyone in it stands at the gate."""
    frames: list[int] = []
    actors = scene.actors(loop)
    i = 0
    while i < len(actors):
        group = [a for a in actors if a.start < actors[i].end and a.end > actors[i].start]
        lo, hi = max(a.gate_start for a in group), min(a.gate_end for a in group)
        assert lo < hi, "people in one segment stand at the gate together for a while"
        frames.append((lo + hi) // 2)
        i += len(group)
    return frames


@pytest.mark.parametrize("size", SIZES)
def test_render_is_deterministic_uint8_rgb_of_the_right_size(scenes, detector, size):
    scene = scenes[size]
    w, h = size
    assert scene.size == size and scene.fps == 25.0
    frame = scene.render(at_gate(scene)[0])
    assert frame.shape == (h, w, 3) and frame.dtype == np.uint8 and frame.flags["C_CONTIGUOUS"]
    again = DemoScene.from_assets(size=size, detector=detector, verify=size == SIZES[0])  # same pictures
    for index in (0, 57, at_gate(scene)[-1], scene.period + 57, 7 * scene.period + 3):
        assert np.array_equal(scene.render(index), again.render(index))
        assert np.array_equal(scene.render(index), scene.render(index))
    assert not np.array_equal(scene.render(57), scene.render(at_gate(scene)[0]))
    # The script loops: same people at the same places one period later.
    later = [t.identity for t in scene.truth(scene.period + at_gate(scene)[0])]
    assert later == [t.identity for t in scene.truth(at_gate(scene)[0])]
    with pytest.raises(ValueError):
        scene.render(-1)


@pytest.mark.parametrize("size", SIZES)
def test_one_period_shows_everyone_and_truth_stays_in_the_frame(scenes, size):
    scene = scenes[size]
    w, h = size
    assert 30 * scene.fps <= scene.period <= 45 * scene.fps
    assert scene.identities == sorted(PERSONS)
    seen: set[str] = set()
    most_at_once = 0
    partial_faces = 0
    for index in range(scene.period):
        truth = scene.truth(index)
        most_at_once = max(most_at_once, len(truth))
        assert all(face.visible == 1.0 for face in truth)
        with_partial = scene.truth(index, partial=True)
        assert set(truth) <= set(with_partial)
        partial_faces += len(with_partial) - len(truth)
        for face in with_partial:
            x, y, bw, bh = face.box
            assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
            assert MIN_VISIBLE <= face.visible <= 1.0
            seen.add(face.identity)
    assert partial_faces > 0  # people walk in and out across the frame's edges
    assert seen == set(PERSONS) | {UNKNOWN}
    assert most_at_once == 2
    # Faces are 110–180 px tall at 640×480, proportionally larger at 1280×720.
    scale = min(w / 640, h / 480)
    for index in at_gate(scene):
        for face in scene.truth(index):
            assert face.visible == 1.0
            assert 110 * scale <= face.box[3] <= 180 * scale
    for actor in scene.actors():
        assert 0 <= actor.start < actor.gate_start < actor.gate_end < actor.end <= scene.period
        assert 2.0 * scene.fps <= actor.gate_end - actor.gate_start <= 3.5 * scene.fps  # groups wait a little


def test_the_detector_finds_exactly_the_truth_faces(scenes, detector):
    """MTCNN on rendered frames: every person at the gate is found where truth says, nothing else is."""
    scene = scenes[(640, 480)]
    frames = at_gate(scene) + at_gate(scene, loop=1)[:2]
    empty = scene.actors()[1].start - 3  # between two people
    assert scene.truth(empty) == []
    checked = 0
    for index in [*frames, empty]:
        truth = scene.truth(index)
        found = detector.detect(scene.render(index))
        assert len(found) == len(truth), (index, truth, found)
        for face in truth:
            best = max(iou(face.box, d.box) for d in found)
            assert best > 0.5, (index, face, found)
            checked += 1
    assert checked >= 8  # 7 appearances in loop 0 (one pair) and two in loop 1


def test_only_val_photos_are_shown(scenes, detector, seed, strangers_dir, monkeypatch):
    from core.demo import scene as demo_scene

    read: list[str] = []
    original = demo_scene.read_image

    def spy(path):
        read.append(str(path))
        return original(path)

    def no_detection(image):
        raise AssertionError("on a second start the demo scene's faces come from the cache")

    cached_only = type(detector)()  # same kind and settings as the one that filled the cache
    monkeypatch.setattr(cached_only, "detect", no_detection)
    monkeypatch.setattr(demo_scene, "read_image", spy)
    steps: list[tuple[int, int]] = []
    scene = DemoScene.from_assets(detector=cached_only, progress=lambda done, total: steps.append((done, total)))
    val, train = seed.dataset / "val", seed.dataset / "train"
    assert read and all(p.startswith((str(val), str(strangers_dir))) for p in read)
    assert not any(p.startswith(str(train)) for p in read)
    assert steps and steps[-1][0] == steps[-1][1]
    for loop in range(5):  # the photos rotate from loop to loop
        for actor in scene.actors(loop):
            if actor.identity == UNKNOWN:
                assert any(strangers_dir.glob(f"*/{actor.photo}"))
            else:
                assert (val / actor.identity / actor.photo).is_file()
                assert not (train / actor.identity / actor.photo).exists()
    shown = {a.photo for loop in range(5) for a in scene.actors(loop) if a.identity == "jerry_seinfeld"}
    assert len(shown) > 1


def test_with_faces_builds_custom_scenes(seed, detector):
    from core.vision.imageio import read_image

    faces = []
    for person in ("ben_afflek", "madonna", "jerry_seinfeld"):
        photo = read_image(max((seed.dataset / "val" / person).iterdir()))
        faces.append((person, photo, detector.detect(photo)[0].box))
    scene = DemoScene.with_faces(faces, together=3)
    assert scene.identities == ["ben_afflek", "jerry_seinfeld", "madonna"]
    index = at_gate(scene)[0]
    truth = scene.truth(index)
    assert [t.identity for t in truth] == ["ben_afflek", "madonna", "jerry_seinfeld"]  # left to right
    boxes = [t.box for t in truth]
    assert all(iou(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])
    found = detector.detect(scene.render(index))
    assert all(max(iou(t.box, d.box) for d in found) > 0.5 for t in truth)

    other = DemoScene.with_faces(faces, together=3, seed=1)
    assert not np.array_equal(other.render(index), scene.render(index))

    scripted = DemoScene.with_faces(faces, size=(1280, 720), script=[[2], [0, 1]], names=["a", "b", "c"])
    assert [a.photo for a in scripted.actors()] == ["c", "a", "b"]
    assert scripted.render(0).shape == (720, 1280, 3)
    for bad in ({"script": [[0, 0]]}, {"script": [[3]]}, {"script": []}, {"together": 0}):
        with pytest.raises(ValueError):
            DemoScene.with_faces(faces, **bad)


def test_core_demo_scene_does_not_import_qt():
    code = "import sys, core.demo.scene; sys.exit(any(m.startswith('PySide6') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
