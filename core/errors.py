"""Typed errors of FaceGate.

Every error carries one sentence that a guard, an HR clerk or an engineer can act on.  Callers
catch :class:`FaceGateError` at the edge (CLI, GUI worker) and show ``str(err)``, never a traceback.
"""

from __future__ import annotations


class FaceGateError(Exception):
    """Base class of every error FaceGate raises on purpose."""


class AssetError(FaceGateError):
    """Model weights or the demo dataset could not be fetched, verified or unpacked."""


class ModelError(FaceGateError):
    """A model could not be built, loaded, trained or used."""


class ImageError(FaceGateError):
    """An image file could not be read or holds no usable picture."""


class FaceError(ImageError):
    """An image was read but holds no usable face (none, or several where one was expected)."""


class DatasetError(FaceGateError):
    """A dataset folder does not have the expected ``train/<person>/`` and ``val/<person>/`` layout."""


class EnrollmentError(FaceGateError):
    """An enrollment was refused (a bad photo set, a duplicate identity, a cancelled import …)."""


class RegistryError(FaceGateError):
    """The registry refused an operation or its file cannot be used; the message says why."""


class PermissionDenied(FaceGateError):
    """An HR action was attempted without the right HR account and passphrase."""


class AccountLocked(PermissionDenied):
    """An account is locked for a while after too many wrong passphrases, or must wait before the next try."""


class UntrustedState(FaceGateError):
    """What decides who is let in does not match what HR signed (or HR has not signed it yet)."""


class WeakPassphrase(FaceGateError):
    """A new HR passphrase was refused (too short, or the two entries differ)."""


class CameraError(FaceGateError):
    """A camera or stream could not be opened or read."""


class ConversionError(ModelError):
    """A model converted for another runtime (ONNX) does not compute what the reference (TensorFlow) does."""
