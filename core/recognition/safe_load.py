"""Reading ``model.joblib`` without letting the file run code.

A joblib file is a pickle, and a pickle names the functions that rebuild it: ``os.system`` is as
good a name as any.  The console finds its model folder through the registry, which the guard's OS
account can write, so a crafted ``model.joblib`` would run with the console's rights the moment it
was unpickled.  :func:`load_model_file` reads the format
:meth:`~core.recognition.engine.RecognitionModel.save` writes (joblib's, unchanged, so every model
saved so far still loads) with an unpickler that:

* resolves only the exact ``(module, name)`` pairs of :data:`ALLOWED_GLOBALS` (the classes a trained
  model holds and numpy's array helpers; old module names of our classes map onto the same
  classes) and refuses any other name before importing anything;
* reads joblib's arrays itself: arrays of Python objects are refused (joblib stores them as a
  second, nested pickle; FaceGate never writes one), as are arrays longer than the file;
* refuses an array type (``numpy.dtype``) whose pickled description does not match its layout, and
  ``numpy.ndarray`` called over a buffer: both would make numpy read raw file bytes as pointers to
  Python objects;
* refuses state set on a class or a function (it would patch that class for the whole process) and
  persistent references.

It does not prove that a model is the one HR trained: allowed classes with crafted attributes can
still decide wrongly, or crash scikit-learn's compiled code.  That needs the model files signed.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
import types
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

from core.errors import ModelError
from core.recognition.legacy import _MOVED

__all__ = ["ALLOWED_GLOBALS", "ARRAY_HELPERS", "LEGACY_CLASSES", "TRAINED_CLASSES", "load_model_file"]

TRAINED_CLASSES: frozenset[tuple[str, str]] = frozenset({
    # What models trained by core.recognition.engine.train_model name, recorded from freshly
    # trained ones: 2 people (binary), a handful (the thesis classifiers), more than
    # MAX_THESIS_CLASSES (the scalable ones), Deep Super Learner on and off, photos that the SVM
    # separates perfectly and photos it does not (the SVC's temperature calibration differs).
    # To regenerate after a scikit-learn, numpy or classifier change, run
    #   .venv/bin/python -m pytest tests/core/test_model_safety.py -k allowlist
    # It fails with the new literal when this set is out of date; review every added name (a
    # class, never a function) before pasting it here.
    ("core.recognition.classifiers.calibration", "_TemperatureScaling"),
    ("core.recognition.classifiers.linear_svm", "_OvRLinearSVC"),
    ("core.recognition.classifiers.naive_bayes", "_GaussianNB"),
    ("core.recognition.classifiers.shared_logistic", "_SharedLogisticRegression"),
    ("core.recognition.classifiers.stacker", "Stacker"),
    ("core.recognition.classifiers.super_learner", "SuperLearner"),
    ("core.recognition.classifiers.svc", "CalibratedSVC"),
    ("core.recognition.engine", "Policy"),
    ("core.recognition.openset", "Calibration"),
    ("sklearn.ensemble._bagging", "BaggingClassifier"),
    ("sklearn.ensemble._forest", "ExtraTreesClassifier"),
    ("sklearn.ensemble._forest", "RandomForestClassifier"),
    ("sklearn.ensemble._weight_boosting", "AdaBoostClassifier"),
    ("sklearn.linear_model._logistic", "LogisticRegression"),
    ("sklearn.neighbors._classification", "KNeighborsClassifier"),
    ("sklearn.svm._classes", "SVC"),
    ("sklearn.tree._classes", "DecisionTreeClassifier"),
    ("sklearn.tree._classes", "ExtraTreeClassifier"),
    ("sklearn.tree._tree", "Tree"),
})
"""The classes (and only classes) a model trained by FaceGate holds, by pickled module and name."""

LEGACY_CLASSES: frozenset[tuple[str, str]] = frozenset({
    # What models trained before issue 12 name and fresh ones no longer do: the SVC's Platt (sigmoid)
    # calibration of up to MAX_THESIS_CLASSES people through scikit-learn's CalibratedClassifierCV
    # (and its temperature scaling when our own Newton fit gave up).  Kept so that the models a site
    # trained with an earlier FaceGate still load; a CalibratedSVC(method="sigmoid") names them too.
    ("core.recognition.classifiers.calibration", "_DecisionValues"),
    ("sklearn.calibration", "CalibratedClassifierCV"),
    ("sklearn.calibration", "_CalibratedClassifier"),
    ("sklearn.calibration", "_SigmoidCalibration"),
    ("sklearn.calibration", "_TemperatureScaling"),
    ("sklearn.frozen._frozen", "FrozenEstimator"),
})
"""Classes of models saved by earlier versions (see the comment); never in :data:`TRAINED_CLASSES`."""

ARRAY_HELPERS: frozenset[tuple[str, str]] = frozenset({
    # How numpy and joblib pickle arrays and numpy scalars; numpy 1.x files spell numpy._core as
    # numpy.core.  _reconstruct and scalar are the only functions allowed: they build an array or
    # a scalar and call nothing else.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
})
"""numpy's and joblib's array reconstruction helpers."""

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = TRAINED_CLASSES | LEGACY_CLASSES | ARRAY_HELPERS
"""Every ``(module, name)`` a ``model.joblib`` may name."""

# Module names under which saved models name our classes besides their home module: the old
# names (core.recognition.legacy) and the classifiers package, which re-exports its submodules'
# classes (models saved before it was split name core.recognition.classifiers._GaussianNB).
# Such a name is accepted only if it is an allowed class under its home module name.
_REEXPORTS: dict[str, str] = {**_MOVED, "core.recognition.classifiers": "core.recognition.classifiers"}

_NATIVE_BYTE_ORDER = "ensure_native_byte_order" in inspect.signature(NumpyUnpickler.__init__).parameters


class _Refused(Exception):
    """The file holds something FaceGate never writes; ``what`` names it for the error message."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _shown(text: str) -> str:
    """``text`` safe to put in an error message (a crafted file chooses it)."""
    return text if text.isprintable() and len(text) <= 120 else repr(text[:120])


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _honest_dtype(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is what numpy builds from its own description (size, flags and alignment).

    A pickled dtype carries its flags, size and alignment, and numpy takes them as given for
    structured types: a ``[("a", "O")]`` type pickled with the "holds objects" flag cleared reads
    raw bytes as object pointers.
    """
    try:
        if dtype.fields is not None:
            names = list(dtype.names or ())
            canonical = np.dtype({"names": names, "formats": [dtype.fields[n][0] for n in names],
                                  "offsets": [dtype.fields[n][1] for n in names], "itemsize": dtype.itemsize},
                                 align=dtype.isalignedstruct)
        elif dtype.subdtype is not None:
            canonical = np.dtype(dtype.subdtype)
        else:
            canonical = np.dtype(dtype.str)
    except (TypeError, ValueError):
        return False
    return bool(canonical == dtype and canonical.itemsize == dtype.itemsize and canonical.flags == dtype.flags
                and canonical.alignment == dtype.alignment and canonical.hasobject == dtype.hasobject)


class _CheckedArrayWrapper(NumpyArrayWrapper):
    """joblib's stand-in for an array, read only if it holds numbers and fits in the file.

    joblib reads an array of Python objects with a second unpickler (restricted only in recent
    joblib versions); models hold none, so they are refused outright.
    """

    def read_array(self, unpickler: _RestrictedUnpickler, *args: Any) -> Any:
        dtype = getattr(self, "dtype", None)
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            unpickler.refuse("an array of Python objects")
        if getattr(self, "subclass", None) is not np.ndarray or getattr(self, "order", None) not in ("C", "F"):
            unpickler.refuse("an array of an unknown kind")
        count = 1
        for n in self.shape:
            if int(n) < 0:
                unpickler.refuse("an array of negative size")
            count *= int(n)
        # Checked before numpy allocates it: a crafted shape would otherwise ask for terabytes.
        if count * dtype.itemsize > unpickler.file_size - unpickler.file_handle.tell():
            raise ValueError("an array is longer than the file (the file is truncated)")
        return super().read_array(unpickler, *args)


class _RestrictedUnpickler(NumpyUnpickler):
    """joblib's unpickler, resolving only :data:`ALLOWED_GLOBALS`; see the module documentation."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, path: Path, file: IO[bytes]) -> None:
        if _NATIVE_BYTE_ORDER:
            super().__init__(str(path), file, ensure_native_byte_order=True)
        else:  # joblib < 1.5
            super().__init__(str(path), file)
        self.file_size = os.fstat(file.fileno()).st_size
        self.refused: str | None = None

    def refuse(self, what: str) -> NoReturn:
        """Stop unpickling: the file holds ``what``, which FaceGate never writes."""
        # Kept too, in case some code between here and load() swallowed the exception.
        self.refused = what
        raise _Refused(what)

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            self.refuse("a malformed name")
        return self._allowed(module, name)

    def _allowed(self, module: str, name: str) -> Any:
        if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return _CheckedArrayWrapper
        if (module, name) in ALLOWED_GLOBALS:
            return _resolve(module, name)
        home = _REEXPORTS.get(module)
        if home is not None and name.isidentifier() and not name.startswith("__"):
            # Our own modules: importing them runs nothing a model file chose.
            obj = getattr(importlib.import_module(home), name, None)
            if isinstance(obj, type) and (obj.__module__, obj.__qualname__) in TRAINED_CLASSES | LEGACY_CLASSES:
                return obj
        self.refuse(_shown(f"{module}.{name}"))

    def persistent_load(self, pid: Any) -> NoReturn:
        self.refuse("a persistent reference")

    def _check_call(self, func: Any, args: Any, kwargs: Any) -> None:
        # numpy.ndarray is allowed as a value (joblib records it as an array's class).  Called with
        # a buffer, it lays an array over raw bytes, an array of Python objects too: raw pointers.
        # Pickles build arrays with _reconstruct and their state; a model never calls ndarray.
        if (isinstance(func, type) and issubclass(func, np.ndarray)
                and (not isinstance(args, tuple) or len(args) > 2 or kwargs)):
            self.refuse("an array laid over raw bytes")

    def load_reduce(self) -> None:
        self._check_call(self.stack[-2], self.stack[-1], None)
        super().load_reduce()

    def load_newobj(self) -> None:
        self._check_call(self.stack[-2], self.stack[-1], None)
        super().load_newobj()

    def load_newobj_ex(self) -> None:
        self._check_call(self.stack[-3], self.stack[-2], self.stack[-1])
        super().load_newobj_ex()

    def _instantiate(self, klass: Any, args: Any) -> None:  # the INST and OBJ opcodes
        self._check_call(klass, args, None)
        super()._instantiate(klass, args)

    def load_build(self) -> None:
        target = self.stack[-2] if len(self.stack) >= 2 else None
        if isinstance(target, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                               types.ModuleType)):
            self.refuse(_shown(f"state for {getattr(target, '__qualname__', type(target).__name__)}"))
        super().load_build()
        built = self.stack[-1]
        if isinstance(built, np.dtype) and not _honest_dtype(built):
            self.refuse("an array type whose description does not match its layout")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex


def load_model_file(path: Path) -> Any:
    """Unpickle a ``model.joblib`` written by FaceGate, refusing anything it never writes.

    Parameters
    ----------
    path
        The ``model.joblib`` file.

    Returns
    -------
    Any
        What :meth:`~core.recognition.engine.RecognitionModel.save` pickled (a dict for every model
        FaceGate ever wrote); the caller checks its shape.

    Raises
    ------
    ModelError
        If the file names a function or class outside :data:`ALLOWED_GLOBALS` (nothing it names is
        imported or called), holds arrays of Python objects, is compressed or not a pickle, or is
        damaged.
    """
    path = Path(path)
    folder = path.parent
    retry = "Roll back with 'facegate models rollback' or train again with 'facegate train'."
    try:
        with open(path, "rb") as file:
            # FaceGate writes uncompressed joblib files, which start with pickle's PROTO opcode; a
            # compressed one would be decompressed (and an old-format one unpickled) by joblib
            # itself, out of this unpickler's reach.
            if file.read(1) != pickle.PROTO:
                raise ModelError(f"{path.name} in {folder} is damaged or not in the format FaceGate writes "
                                 f"(compressed, or not a model at all); it was not loaded. {retry}")
            file.seek(0)
            unpickler = _RestrictedUnpickler(path, file)
            try:
                payload = unpickler.load()
            except _Refused as refused:
                unpickler.refused = refused.what
            if unpickler.refused is not None:
                raise ModelError(f"{path.name} in {folder} contains {unpickler.refused}, which FaceGate never "
                                 "writes: the file was not made by FaceGate's trainer; it was not loaded. "
                                 f"{retry}")
    except ModelError:
        raise
    except Exception as exc:  # a damaged pickle raises nearly anything
        raise ModelError(f"{path.name} in {folder} is damaged ({_shown(str(exc))}); it was not loaded. "
                         f"{retry}") from exc
    return payload
