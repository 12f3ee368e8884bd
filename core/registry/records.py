"""The registry's records: frozen dataclasses that cross the API boundary.

Every read method of :class:`~core.registry.Registry` returns these, never database rows; every
time read back is timezone-aware UTC.  :class:`NewEvent` is the one input record (for
:meth:`~core.registry.Registry.record_events`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Operator:
    """One enrolled person.  ``photos`` and ``embeddings`` are counts."""

    id: int
    employee_id: str
    name: str
    department: str
    active: bool
    created: datetime
    photos: int = 0
    embeddings: int = 0


@dataclass(frozen=True)
class Photo:
    """Metadata of one enrolled photo (the image bytes come from :meth:`Registry.photo_bytes`)."""

    id: int
    operator_id: int
    sha256: str
    source: str
    captured_at: datetime | None
    quality: dict[str, Any] = field(hash=False)
    created: datetime


@dataclass(frozen=True)
class NewEvent:
    """One recognition event to record (input of :meth:`Registry.record_events <core.registry.Registry.record_events>`).

    ``decision`` is a short lower-case code (the live monitor writes ``recognised``, ``gallery-only``,
    ``unknown`` and ``undecided``), never a name: the person is ``operator`` (row id or employee id,
    ``None`` for a stranger).
    ``probabilities`` is JSON-able, e.g. ``{"svc": {"E1001": 0.97, …}, …}``; ``reason`` is the
    free-text explanation.  Both are redacted together with the operator link on erasure.
    ``time`` defaults to now; a naive datetime is taken as local time.
    """

    camera: str
    decision: str
    operator: int | str | None
    probabilities: Mapping[str, Any] = field(hash=False)
    distance: float | None
    thumbnail_jpeg: bytes | None
    model_version: str
    reason: str = ""
    time: datetime | None = None


@dataclass(frozen=True)
class Event:
    """One recorded recognition event.

    ``employee_id`` and ``name`` are looked up from the operator row at read time (``None`` for a
    stranger and after erasure).  ``erased`` is true once the person was erased: then
    ``probabilities`` and ``reason`` are ``None`` and there is no thumbnail.
    """

    id: int
    time: datetime
    camera: str
    decision: str
    operator_id: int | None
    employee_id: str | None
    name: str | None
    probabilities: dict[str, Any] | None = field(hash=False)
    reason: str | None
    distance: float | None
    model_version: str
    has_thumbnail: bool
    erased: bool


@dataclass(frozen=True)
class AuditEntry:
    """One audit row: ``actor`` did ``action`` to ``object``, changing ``old`` into ``new``."""

    id: int
    time: datetime
    actor: str
    action: str
    object: str
    old: Any = field(hash=False)
    new: Any = field(hash=False)


@dataclass(frozen=True)
class ModelVersion:
    """One trained model version; ``path`` is the artifact the trainer wrote."""

    id: int
    created: datetime
    path: str
    embedder: str
    embedder_version: str
    metrics: dict[str, Any] = field(hash=False)
    active: bool
    status: str
    activated_at: datetime | None
    notes: str


@dataclass(frozen=True)
class ErasureReport:
    """What :meth:`Registry.remove_operator` deleted or redacted."""

    employee_id: str
    photos: int
    embeddings: int
    events_redacted: int


@dataclass(frozen=True)
class ErasureRecord:
    """One row of the erasure ledger (:meth:`Registry.erasure_ledger`): no personal data.

    ``operator_row`` is the erased operator's internal row id (never reused, so it names that one
    enrollment and nobody else); ``models_pruned`` the model versions whose files were deleted
    because they were trained with the person.  A restore re-applies every erasure its backup
    does not know of, by ``operator_row``.
    """

    id: int
    time: datetime
    operator_row: int
    models_pruned: tuple[int, ...]
