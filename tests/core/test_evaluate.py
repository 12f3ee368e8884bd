"""``facegate evaluate``: the thesis tables, the open-set figures, and bad photos in a dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.cli.main import main
from core.errors import DatasetError
from core.recognition.evaluate import evaluate


@pytest.fixture(scope="module")
def full_report(seed, strangers_dir, pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    report = evaluate(seed.dataset, unknown=strangers_dir, out_dir=out, pipeline=pipeline)
    return report, out


def test_report_has_every_required_figure(full_report):
    report, out = full_report
    for name in ("svc", "stacker", "super_learner"):
        assert {"train_accuracy", "val_accuracy"} <= set(report["models"][name])
    assert {"mean", "std"} <= set(report["models"]["stacker"]["cv_accuracy"])
    assert len(report["base_learners"]) == 9
    for row in report["base_learners"].values():
        assert {"train_accuracy", "val_accuracy"} <= set(row)
    assert {"threshold", "genuine_accept_rate", "impostor_reject_rate", "unknown_reject_rate"} <= set(
        report["open_set"])
    assert {"train", "val", "skipped"} <= set(report["faces"])
    assert (out / "stacker_cv.csv").read_text().startswith("model,fold,accuracy")
    assert (out / "stacker_cv_boxplot.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps(report)  # serialisable as is


def test_thesis_scenario_one_is_reproduced_and_bettered(full_report):
    report, _ = full_report
    assert report["faces"]["val"] == 25
    for name in ("svc", "stacker", "super_learner"):
        assert report["models"][name]["val_accuracy"] == 1.0, name
    o = report["open_set"]
    assert o["genuine_accept_rate"] >= 0.95
    assert o["impostor_reject_rate"] >= 0.95
    assert o["unknown_reject_rate"] == 1.0
    assert len(report["val_faces"]) == 25
    assert all(set(f["models"]) == {"svc", "stacker", "super_learner"} for f in report["val_faces"])


def _mini_dataset(seed, root):
    """Three people, five train and two val photos each, plus every kind of bad file."""
    for split, count in (("train", 5), ("val", 2)):
        for person in ("ben_afflek", "madonna", "jerry_seinfeld"):
            src = sorted((seed.dataset / split / person).iterdir())[:count]
            dst = root / split / person
            dst.mkdir(parents=True)
            for p in src:
                shutil.copy(p, dst / p.name)
    bad = root / "train" / "madonna"
    good = next(bad.iterdir()).read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 10)
    (bad / "notes.txt").write_text("not a photo")
    (bad / "empty.png").write_bytes(b"")
    from PIL import Image

    Image.new("RGB", (320, 240), (180, 180, 180)).save(bad / "wall.png")
    return root


def test_bad_photos_are_skipped_with_a_reason_and_small_classes_work(seed, pipeline, tmp_path):
    root = _mini_dataset(seed, tmp_path / "mini")
    report = evaluate(root, out_dir=tmp_path / "out", pipeline=pipeline, cv_splits=10, cv_repeats=1)
    assert report["faces"]["train"] == 15 and report["faces"]["val"] == 6
    assert report["faces"]["skipped"] == 5
    reasons = " ".join(report["skipped"])
    for needle in ("truncated.jpg", "corrupt.jpg", "notes.txt", "empty.png", "wall.png: no face"):
        assert needle in reasons
    assert all(len(r.splitlines()) == 1 for r in report["skipped"])
    assert report["models"]["svc"]["val_accuracy"] == 1.0
    assert not np.isnan(report["open_set"]["impostor_reject_rate"])


def test_bad_layout_is_a_clear_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="train/<person>"):
        evaluate(tmp_path / "photos")
    with pytest.raises(DatasetError, match="not a folder"):
        evaluate(tmp_path / "missing")


def test_cli_evaluate_on_bad_layout_prints_one_line(tmp_path, capsys):
    assert main(["-q", "evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facegate: error:") and len(err.splitlines()) == 1
