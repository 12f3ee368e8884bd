"""A model file cannot run code (issue 10, finding 1), and models load only from the data folder.

Planted ``model.joblib`` files that would run a command (``touch <marker>``) when unpickled are
refused, through :meth:`RecognitionModel.load` and through the registry, and the marker never
appears.  Real models, trained here and saved by FaceGate 0.1, still load and decide the same.
The allowlist of the restricted unpickler is checked against what freshly trained models name.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import operator
import os
import pickle
import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from core.errors import ModelError
from core.recognition import safe_load
from core.recognition.classifiers import MAX_THESIS_CLASSES, CalibratedSVC
from core.recognition.engine import RecognitionModel, train_model
from core.registry import Registry
from core.registry.training import load_active_model

DATA = Path(__file__).resolve().parents[1] / "data"
LEGACY = DATA / "legacy_model_0_1"


# -- planted files ----------------------------------------------------------------------------------


class Reduce:
    """Pickles as ``func(*args)``: what an attacker's file holds."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args

    def __call__(self, *args: Any) -> Any:
        # Only so that pickle accepts one Reduce as another's function: getattr(...)(...) chains.
        raise AssertionError("never called")


class LyingDtype:
    """Pickles as a structured dtype holding a Python object, its "holds objects" flags cleared."""

    def __reduce__(self) -> tuple[Any, ...]:
        return np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


def touch(marker: Path) -> Reduce:
    return Reduce(os.system, f"touch '{marker}'")


def legacy_payload() -> dict[str, Any]:
    """The payload of the model FaceGate 0.1 saved (trusted: it is checked in)."""
    payload = safe_load.load_model_file(LEGACY / "model.joblib")
    assert isinstance(payload, dict)
    return payload


def planted(tmp_path: Path, content: bytes | None = None, *, payload: Any = None, compress: int = 0) -> Path:
    """A copy of the 0.1 model folder (valid model.json) whose model.joblib is replaced."""
    folder = tmp_path / "planted"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(LEGACY, folder)
    if content is not None:
        (folder / "model.joblib").write_bytes(content)
    else:
        joblib.dump(payload, folder / "model.joblib", compress=compress)
    return folder


def with_extra(key: str, value: Any) -> dict[str, Any]:
    payload = legacy_payload()
    payload[key] = value
    return payload


def _text(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def getattr_chain(marker: Path) -> bytes:
    """``getattr(__import__("os"), "system")("touch <marker>")`` in pickle opcodes (no class of ours)."""
    return (b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n(" + _text("os") + b"tR" + _text("system")
            + b"tR(" + _text(f"touch '{marker}'") + b"tR.")


def expect_refused(folder: Path, marker: Path, match: str = "never writes") -> ModelError:
    with pytest.raises(ModelError, match=match) as info:
        RecognitionModel.load(folder)
    assert not marker.exists(), "the planted code ran"
    return info.value


def test_a_top_level_reduce_is_refused(tmp_path, marker):
    folder = planted(tmp_path, pickle.dumps(touch(marker), protocol=5))
    err = expect_refused(folder, marker)
    assert str(err).startswith(f"model.joblib in {folder} contains posix.system, which FaceGate never writes")
    assert "it was not loaded" in str(err)


def test_code_nested_in_the_classifiers_is_refused(tmp_path, marker):
    payload = legacy_payload()
    payload["classifiers"]["svc"] = touch(marker)
    err = expect_refused(planted(tmp_path, payload=payload), marker)
    assert "system" in str(err)


@pytest.mark.parametrize("func", ["exec", "popen", "partial", "attrgetter", "getattr"])
def test_other_ways_to_call_a_function_are_refused(tmp_path, marker, func):
    command = f"touch '{marker}'"
    os_module = Reduce(importlib.import_module, "os")
    evil = {
        "exec": Reduce(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "partial": Reduce(functools.partial(os.system, command)),
        "attrgetter": Reduce(Reduce(operator.attrgetter("system"), os_module), command),
        "getattr": Reduce(Reduce(builtins.getattr, os_module, "system"), command),
    }[func]
    expect_refused(planted(tmp_path, payload=with_extra("extra", evil)), marker)


def test_a_getattr_chain_is_refused_with_or_without_a_protocol_header(tmp_path, marker):
    err = expect_refused(planted(tmp_path, getattr_chain(marker)), marker)
    assert "builtins.getattr" in str(err)
    expect_refused(planted(tmp_path, getattr_chain(marker)[2:]), marker, match="not in the format FaceGate writes")


def test_an_object_array_whose_payload_runs_code_is_refused(tmp_path, marker):
    # joblib stores an object array as a second pickle, which it unpickles by itself.
    payload = with_extra("gallery_y", np.array([touch(marker), "x"], dtype=object))
    err = expect_refused(planted(tmp_path, payload=payload), marker)
    assert "an array of Python objects" in str(err)


def test_a_compressed_file_is_refused_before_joblib_decompresses_and_unpickles_it(tmp_path, marker):
    folder = planted(tmp_path, payload=with_extra("extra", touch(marker)), compress=3)
    expect_refused(folder, marker, match="not in the format FaceGate writes")


def test_functions_and_modules_under_our_own_module_names_are_refused(tmp_path, marker):
    # core.engine is an alias FaceGate resolves for old model files; engine.py imports os.
    for module, name in (("core.engine", "os"), ("core.engine", "train_model"),
                         ("core.classifiers", "make_classifier"), ("core.recognition.classifiers", "base"),
                         ("core.recognition.engine", "RecognitionModel")):
        content = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
        err = expect_refused(planted(tmp_path, content), marker)
        assert f"{module}.{name}" in str(err)


def test_state_set_on_a_class_is_refused(tmp_path, marker):
    # GLOBAL CalibratedSVC, BUILD (None, {attr: 1}): pickle would setattr on the class itself.
    attr = "planted_by_a_model_file"
    content = (b"\x80\x02ccore.recognition.classifiers.svc\nCalibratedSVC\nN}" + _text(attr) + b"K\x01s\x86b.")
    try:
        expect_refused(planted(tmp_path, content), marker)
        assert not hasattr(CalibratedSVC, attr)
    finally:
        if hasattr(CalibratedSVC, attr):
            delattr(CalibratedSVC, attr)


def test_an_array_type_lying_about_holding_objects_is_refused(tmp_path, marker):
    # numpy would read raw file bytes as object pointers through such a type.
    err = expect_refused(planted(tmp_path, payload=with_extra("extra", LyingDtype())), marker)
    assert "array type" in str(err)


def test_an_object_array_laid_over_raw_bytes_is_refused(tmp_path, marker):
    # numpy.ndarray((1,), "O", buffer) reads the buffer as object pointers: 0x4141... here, which
    # would crash the console if it were ever touched (crafted bytes could do worse).
    evil = Reduce(np.ndarray, (1,), "O", b"A" * 8)
    err = expect_refused(planted(tmp_path, payload=with_extra("extra", evil)), marker)
    assert "an array laid over raw bytes" in str(err)
    # The same through NEWOBJ: ndarray.__new__(ndarray, (1,), "O", b"AAAAAAAA").
    newobj = b"\x80\x02cnumpy\nndarray\nK\x01\x85" + _text("O") + b"C\x08" + b"A" * 8 + b"\x87\x81."
    expect_refused(planted(tmp_path, newobj), marker, match="an array laid over raw bytes")


def test_a_damaged_file_or_a_payload_of_the_wrong_shape_is_refused(tmp_path, marker):
    good = (LEGACY / "model.joblib").read_bytes()
    expect_refused(planted(tmp_path, good[: len(good) // 2]), marker, match="damaged")
    expect_refused(planted(tmp_path, payload=[1, 2]), marker, match="damaged")
    payload = legacy_payload()
    payload["policy"] = payload["calibration"]
    expect_refused(planted(tmp_path, payload=payload), marker, match="damaged")


# -- real models ------------------------------------------------------------------------------------


def test_a_trained_model_round_trips_and_decides_the_same(tmp_path, trained_model, val_set):
    loaded = RecognitionModel.load(trained_model.save(tmp_path / "m"))
    assert type(loaded.policy) is type(trained_model.policy)
    for name, clf in trained_model.classifiers.items():
        np.testing.assert_array_equal(loaded.probabilities(val_set.x)[name], clf.predict_proba(val_set.x))
    before, after = trained_model.decide(val_set.x), loaded.decide(val_set.x)
    assert [d for _, _, d, _ in after] == [d for _, _, d, _ in before]
    assert [t for _, t, _, _ in after] == [t for _, t, _, _ in before]


def test_the_0_1_model_names_its_classes_under_old_modules_and_loads_as_the_same_classes():
    content = (LEGACY / "model.joblib").read_bytes()
    assert b"core.classifiers" in content and b"core.engine" in content  # what the aliases are for
    model = RecognitionModel.load(LEGACY)
    assert type(model.classifiers["svc"]) is CalibratedSVC


# -- the allowlist ----------------------------------------------------------------------------------


class _Recorder(safe_load._RestrictedUnpickler):
    """Notes every name a file uses and resolves it freely: only for files written by this test."""

    def __init__(self, path: Path, file: Any) -> None:
        super().__init__(path, file)
        self.seen: set[tuple[str, str]] = set()

    def _allowed(self, module: str, name: str) -> Any:
        self.seen.add((module, name))
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return safe_load._CheckedArrayWrapper
        return safe_load._resolve(module, name)


def _names_in(path: Path) -> set[tuple[str, str]]:
    with open(path, "rb") as file:
        recorder = _Recorder(path, file)
        recorder.load()
    return recorder.seen


def _gallery(people: int, spread: float, photos: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised 128-d embeddings around random centres; ``spread`` 0.3 separates the people
    perfectly, 3.0 mixes them (the SVC's temperature calibration takes another path then)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(rng.normal(size=(people, 128)), photos, axis=0) + spread * rng.normal(size=(people * photos, 128))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat([f"E-{i:03d}" for i in range(people)], photos)


def test_allowlist_matches_the_names_freshly_trained_models_use(tmp_path):
    large = MAX_THESIS_CLASSES + 2
    seen: set[tuple[str, str]] = set()
    for people, spread, deep in ((2, 0.3, False), (2, 3.0, False), (5, 0.3, True), (5, 3.0, False),
                                 (large, 0.3, False), (large, 3.0, True)):
        x, y = _gallery(people, spread)
        folder = train_model(x, y, deep=deep).save(tmp_path / f"m-{people}-{spread}-{deep}")
        seen |= _names_in(folder / "model.joblib")
        RecognitionModel.load(folder)  # and the restricted loader reads it
    trained = seen - safe_load.ARRAY_HELPERS
    literal = "\n".join(f"    {pair!r}," for pair in sorted(trained))
    assert trained == safe_load.TRAINED_CLASSES, (
        "core/recognition/safe_load.py TRAINED_CLASSES is out of date: trained models now name "
        f"{sorted(trained - safe_load.TRAINED_CLASSES)} and no longer "
        f"{sorted(safe_load.TRAINED_CLASSES - trained)}. Check that every new name is a class, then set it to:\n"
        f"{literal}")


def test_the_allowlist_holds_classes_only_besides_numpys_two_helpers():
    helpers = {(module, name) for module in ("numpy._core.multiarray", "numpy.core.multiarray")
               for name in ("_reconstruct", "scalar")}
    for module, name in safe_load.ALLOWED_GLOBALS - helpers:
        obj = safe_load._resolve(module, name)
        assert isinstance(obj, type), (module, name)
        assert not issubclass(obj, type), (module, name)  # no metaclass: calling one makes classes
    assert not {("builtins", "eval"), ("builtins", "getattr"), ("posix", "system"), ("functools", "partial"),
                ("operator", "attrgetter")} & safe_load.ALLOWED_GLOBALS
    assert not any(m.startswith(("builtins", "os", "posix", "subprocess", "importlib", "copyreg"))
                   for m, _ in safe_load.ALLOWED_GLOBALS)


# -- through the registry ---------------------------------------------------------------------------


def _clone(data_dir: Path, dest: Path) -> tuple[Path, Path]:
    """A private copy of the demo data folder (SQLite backup API) and its models folder."""
    dest.mkdir(parents=True)
    db = dest / "facegate.db"
    src, dst = sqlite3.connect(data_dir / "facegate.db"), sqlite3.connect(db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copytree(data_dir / "models", dest / "models")
    return db, dest / "models"


def _set_active_path(db: Path, path: str) -> None:
    """What an attacker with the guard's account can do: edit the registry with any SQLite tool."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE model_versions SET path = ? WHERE active = 1", [path])
    finally:
        conn.close()


@pytest.fixture
def demo_copy(demo_registry, tmp_path) -> tuple[Path, Path, str]:
    db, models = _clone(demo_registry, tmp_path / "data")
    with Registry.open(db) as reg:
        active = reg.active_model()
    assert active is not None
    return db, models, Path(active.path).name


def _crafted_folder(where: Path, legit: Path, marker: Path) -> Path:
    where.mkdir(parents=True)
    shutil.copy(legit / "model.json", where / "model.json")
    (where / "model.joblib").write_bytes(pickle.dumps(touch(marker), protocol=5))
    return where


def _load(db: Path, models: Path) -> RecognitionModel | None:
    with Registry.open(db) as reg:
        return load_active_model(reg, models, live_gallery=True)


def test_the_registry_refuses_a_model_recorded_outside_the_models_folder(demo_copy, tmp_path, marker):
    db, models, version = demo_copy
    outside = _crafted_folder(tmp_path / "elsewhere" / "20990101-000000-abcdef", models / version, marker)
    for recorded in (str(outside), os.path.relpath(outside, models)):
        _set_active_path(db, recorded)
        with pytest.raises(ModelError, match="outside the data folder's models folder") as info:
            _load(db, models)
        assert "Model version " in str(info.value) and not marker.exists()


def test_the_registry_refuses_a_version_folder_or_file_linked_outside(demo_copy, tmp_path, marker):
    db, models, version = demo_copy
    outside = _crafted_folder(tmp_path / "elsewhere" / "crafted", models / version, marker)
    (models / "20990101-000000-bbbbbb").symlink_to(outside, target_is_directory=True)
    _set_active_path(db, str(models / "20990101-000000-bbbbbb"))
    with pytest.raises(ModelError, match="outside the data folder's models folder"):
        _load(db, models)
    linked = models / "20990101-000000-cccccc"
    linked.mkdir()
    shutil.copy(models / version / "model.json", linked / "model.json")
    (linked / "model.joblib").symlink_to(outside / "model.joblib")
    _set_active_path(db, str(linked))
    with pytest.raises(ModelError, match="outside the data folder's models folder"):
        _load(db, models)
    assert not marker.exists()


def test_the_registry_refuses_a_planted_file_inside_the_models_folder(demo_copy, marker):
    db, models, version = demo_copy
    (models / version / "model.joblib").write_bytes(pickle.dumps(touch(marker), protocol=5))
    with pytest.raises(ModelError, match="never writes"):
        _load(db, models)
    assert not marker.exists()


def test_a_data_folder_restored_elsewhere_still_loads_its_models_by_name(demo_copy, tmp_path):
    db, models, version = demo_copy
    _set_active_path(db, str(tmp_path / "old-site" / "data" / "models" / version))
    model = _load(db, models)
    assert model is not None and model.version == version


def test_mtcnn_weights_that_changed_in_the_install_are_refused_before_unpickling(monkeypatch):
    """The detector's weights are joblib pickles too: checked against their pinned SHA-256 first."""
    from core.errors import ModelError
    from core.vision import detector

    monkeypatch.setitem(detector._WEIGHT_SHA256, "pnet.lz4", "0" * 64)
    with pytest.raises(ModelError, match="not the pinned ones"):
        detector._load_weights("pnet.lz4")
    assert isinstance(detector._load_weights("rnet.lz4"), list)
