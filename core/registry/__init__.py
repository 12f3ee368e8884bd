"""The registry: one SQLite file with operators, photos, embeddings, hash-chained events and audit,
and model versions (:mod:`.store`); HR authorisation (:mod:`.security`); enrollment with the
quality gate and duplicate check (:mod:`.enrollment`); versioned retraining (:mod:`.training`).

The storage API is re-exported here: ``from core.registry import Registry``.
"""

from core.registry.store import (
    GENESIS_HASH,
    SCHEMA_VERSION,
    AuditEntry,
    ErasureReport,
    Event,
    ModelVersion,
    NewEvent,
    Operator,
    Photo,
    Registry,
    RegistryError,
    data_dir,
)

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "AuditEntry",
    "ErasureReport",
    "Event",
    "ModelVersion",
    "NewEvent",
    "Operator",
    "Photo",
    "Registry",
    "RegistryError",
    "data_dir",
]
