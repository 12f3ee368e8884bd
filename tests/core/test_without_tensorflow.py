"""Issue 13: once the networks are converted, the live monitor and ``recognize`` never import TensorFlow,
and both backends give the same embeddings and the same decisions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.recognition.dataset import embed_folder
from core.vision.onnx_embedder import MAX_ABS_DIFF

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "tf2onnx", "mtcnn")


@pytest.fixture(scope="module")
def converted(pipeline):
    """The ONNX networks converted and cached (this process may import TensorFlow; the children must not)."""
    pipeline.embedder.load()
    pipeline.detector.load()
    assert (pipeline.embedder.backend, pipeline.detector.backend) == ("onnx", "onnx"), pipeline.fallback_reasons()
    return pipeline


def _run_child(code: str, timeout: float = 300) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_live_monitor_runs_without_importing_tensorflow(converted, demo_registry, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(demo_registry, data)
    code = (
        "import contextlib, io, json, sys\n"
        "from core.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['-q', 'monitor', '--data-dir', {str(data)!r}, '--duration', '6', '--backend', 'onnx'])\n"
        f"print(json.dumps({{'rc': rc, 'out': out.getvalue(), 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    report = _run_child(code)
    assert report["rc"] == 0, report["out"]
    assert report["loaded"] == []
    assert "Networks: ONNX Runtime" in report["out"]
    assert "track" in report["out"]  # it decided on somebody in 6 s


def test_recognize_runs_without_importing_tensorflow(converted, demo_registry, seed):
    photo = sorted((seed.dataset / "val" / "madonna").iterdir())[0]
    code = (
        "import contextlib, io, json, sys\n"
        "from core.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['-q', 'recognize', '--registry', '--data-dir', {str(demo_registry)!r}, '--json', {str(photo)!r}])\n"
        f"print(json.dumps({{'rc': rc, 'out': out.getvalue(), 'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    report = _run_child(code)
    assert report["rc"] == 0 and report["loaded"] == []
    assert json.loads(report["out"])[0]["decision"] == "madonna"


@pytest.fixture(scope="module")
def both(seed, strangers_dir, converted, tf_pipeline):
    """Val faces and strangers, detected and embedded by each backend (no embedding cache: it is keyed by
    the pipeline's signature, which both backends share)."""
    return {name: (embed_folder(seed.dataset / "val", pipe, use_cache=False),
                   embed_folder(strangers_dir, pipe, use_cache=False))
            for name, pipe in (("onnx", converted), ("tf", tf_pipeline))}


def test_both_backends_give_the_same_embeddings_and_decisions(both, trained_model):
    (onnx_val, onnx_strangers), (tf_val, tf_strangers) = both["onnx"], both["tf"]
    for a, b in ((onnx_val, tf_val), (onnx_strangers, tf_strangers)):
        assert a.paths == b.paths and list(a.y) == list(b.y)  # the same faces found in the same photos
        assert a.boxes == b.boxes
        assert np.abs(a.x - b.x).max() <= MAX_ABS_DIFF
    for a, b in ((onnx_val, tf_val), (onnx_strangers, tf_strangers)):
        da, db = trained_model.decide(a.x), trained_model.decide(b.x)
        assert [d[2].identity for d in da] == [d[2].identity for d in db]
        for (va, *_rest), (vb, *_other) in zip(da, db):
            assert [v.identity for v in va] == [v.identity for v in vb]
            assert max(abs(x.probability - y.probability) for x, y in zip(va, vb)) <= 1e-4
    assert [d[2].identity for d in trained_model.decide(onnx_val.x)] == list(onnx_val.y)  # 25/25
    assert all(d[2].identity == "unknown" for d in trained_model.decide(onnx_strangers.x))
