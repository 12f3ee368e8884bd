"""The inference backends (issue 13): choosing one, falling back, and converting once under a lock."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from core.errors import ConversionError
from core.recognition.engine import FacePipeline
from core.vision import backends, onnx_files
from core.vision.backends import BackendError, FallbackEmbedder, check_backend, default_backend
from core.vision.facenet import FaceNetEmbedder
from core.vision.imageio import read_image
from core.vision.onnx_embedder import OnnxEmbedder


def test_onnx_is_the_default_and_the_environment_or_the_caller_can_choose(monkeypatch):
    monkeypatch.delenv(backends.ENV_VAR, raising=False)
    assert default_backend() == "onnx"
    assert FacePipeline().requested_backend == "onnx"
    monkeypatch.setenv(backends.ENV_VAR, "tf")
    assert default_backend() == "tf"
    assert isinstance(FacePipeline().embedder, FaceNetEmbedder)
    assert FacePipeline(backend="onnx").embedder.backend == "onnx"
    monkeypatch.setenv(backends.ENV_VAR, "cuda")
    with pytest.raises(BackendError, match="There is no inference backend 'cuda': choose one of onnx, tf"):
        default_backend()
    with pytest.raises(BackendError):
        check_backend("openvino")


def test_the_embedder_signature_does_not_depend_on_the_backend():
    onnx, tf = FacePipeline(backend="onnx"), FacePipeline(backend="tf")
    assert onnx.signature == tf.signature  # galleries and models stay valid across backends
    assert (onnx.embedder.name, onnx.embedder.version) == (tf.embedder.name, tf.embedder.version)


def test_a_refused_conversion_falls_back_to_tensorflow_with_a_reason(seed, tf_pipeline, val_set, tmp_path, caplog,
                                                                     monkeypatch):
    monkeypatch.setattr(backends, "_FAILED", {})
    # Fault injected: fewer than three real faces to check a conversion on, so ONNX refuses to convert.
    onnx = OnnxEmbedder(seed.facenet_h5, folder=tmp_path, reference_faces=np.zeros((2, 160, 160, 3), np.uint8))
    emb = FallbackEmbedder("FaceNet embedder", onnx, lambda: FaceNetEmbedder(seed.facenet_h5))
    image = read_image(val_set.paths[0])
    crops = tf_pipeline.align(image, tf_pipeline.detector.detect(image))
    got = emb.embed(crops)
    assert emb.backend == "tf"
    assert emb.fallback_reason is not None and "TensorFlow runs it" in emb.fallback_reason
    assert "at least 3 real aligned faces" in emb.fallback_reason
    assert "TensorFlow runs it" in caplog.text
    np.testing.assert_array_equal(got, tf_pipeline.embedder.embed(crops))
    pipeline = FacePipeline(tf_pipeline.detector, emb)
    assert pipeline.backend == "tf" and pipeline.fallback_reasons() == [emb.fallback_reason]
    # A second part in the same process does not try (and fail) again: it goes straight to TensorFlow.
    again = FallbackEmbedder("FaceNet embedder", OnnxEmbedder(seed.facenet_h5, folder=tmp_path),
                             lambda: FaceNetEmbedder(seed.facenet_h5))
    again.load()
    assert again.backend == "tf" and not list(tmp_path.glob("*.onnx"))


def _convert_once(folder: str, log: str, start: multiprocessing.synchronize.Event, out: str) -> None:
    """One process of the lock test: wait for the others, then load or convert (counting conversions)."""
    start.wait(60)
    target = onnx_files.cached_path("test", "ab" * 32, Path(folder))

    def convert() -> Path:
        with open(log, "a") as fh:
            fh.write("converted\n")
        onnx_files.write(target, b"not really onnx", {"source_sha256": "ab" * 32, "max_abs_diff": 0.0})
        return target

    path, data, meta, from_cache = onnx_files.load_or_convert([target], "ab" * 32, 1e-5, convert, "test")
    Path(out).write_text(json.dumps({"from_cache": from_cache, "sha": meta["onnx_sha256"]}))


def test_processes_starting_together_convert_once(tmp_path):
    log = tmp_path / "conversions.log"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    outs = [tmp_path / f"result-{i}.json" for i in range(4)]
    procs = [ctx.Process(target=_convert_once, args=(str(tmp_path), str(log), start, str(out))) for out in outs]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    results = [json.loads(out.read_text()) for out in outs]
    assert log.read_text().count("converted") == 1
    assert sorted(r["from_cache"] for r in results) == [False, True, True, True]
    assert len({r["sha"] for r in results}) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_damaged_sidecar_or_file_is_reconverted_under_the_lock(tmp_path, caplog):
    target = onnx_files.cached_path("test", "cd" * 32, tmp_path)
    calls = []

    def convert() -> Path:
        calls.append(1)
        onnx_files.write(target, b"payload %d" % len(calls), {"source_sha256": "cd" * 32, "max_abs_diff": 0.0})
        return target

    assert onnx_files.load_or_convert([target], "cd" * 32, 1e-5, convert, "test")[3] is False
    assert onnx_files.load_or_convert([target], "cd" * 32, 1e-5, convert, "test")[3] is True
    target.write_bytes(b"payload 1 but changed")
    path, data, meta, cached = onnx_files.load_or_convert([target], "cd" * 32, 1e-5, convert, "test")
    assert (cached, data, len(calls)) == (False, b"payload 2", 2)
    assert "damaged or replaced" in caplog.text
    side = onnx_files.sidecar_path(target)
    side.write_text(json.dumps({**json.loads(side.read_text()), "max_abs_diff": 0.5}))
    assert onnx_files.load_or_convert([target], "cd" * 32, 1e-5, convert, "test")[1] == b"payload 3"
    assert "above 1e-05" in caplog.text
    # Weights that are not the ones asked for: never used.
    assert isinstance(onnx_files.check(target, "ef" * 32, 1e-5), str)


def test_conversion_errors_are_facegate_errors():
    from core.errors import FaceGateError

    assert issubclass(ConversionError, FaceGateError)
