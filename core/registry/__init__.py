"""The registry: one SQLite file with operators, photos, embeddings, hash-chained events and audit,
and model versions; HR authorisation (:mod:`.security`); enrollment with the quality gate and
duplicate check (:mod:`.enrollment`); versioned retraining (:mod:`.training`).

The storage API is re-exported here: ``from core.registry import Registry``.  Where its parts live:

* :mod:`.store` — :class:`Registry` itself, with operators, photos, embeddings and settings;
* :mod:`.connection` — opening the file, transactions, SQLite errors as sentences, :func:`data_dir`;
* :mod:`.records` — the frozen dataclasses the API returns (:class:`Operator`, :class:`Event` …);
* :mod:`.events` — the event log and the audit trail;
* :mod:`.event_query` — filtered, paged reading of the events (:class:`EventFilter`, :class:`EventRow`)
  and their CSV export;
* :mod:`.guard` — a guard's confirm / override of a decision, in the audit trail (:class:`GuardAction`);
* :mod:`.chains` — the hash chains and :meth:`Registry.verify`;
* :mod:`.erasure` — erasing a person, retention of events;
* :mod:`.model_versions` — activating and rolling back trained models;
* :mod:`.backup` — backup and restore;
* :mod:`.schema` — tables, triggers and migrations; :mod:`.sql` — column and query helpers.
"""

from core.errors import RegistryError
from core.registry.chains import GENESIS_HASH
from core.registry.connection import data_dir
from core.registry.event_query import DECISION_CODES, FLAGGED, EventFilter, EventRow
from core.registry.guard import GUARD_ACTIONS, OVERRIDE_REASONS, GuardAction
from core.registry.records import AuditEntry, ErasureReport, Event, ModelVersion, NewEvent, Operator, Photo
from core.registry.schema import SCHEMA_VERSION
from core.registry.store import Registry

__all__ = [
    "DECISION_CODES",
    "FLAGGED",
    "GENESIS_HASH",
    "GUARD_ACTIONS",
    "OVERRIDE_REASONS",
    "SCHEMA_VERSION",
    "AuditEntry",
    "ErasureReport",
    "Event",
    "EventFilter",
    "EventRow",
    "GuardAction",
    "ModelVersion",
    "NewEvent",
    "Operator",
    "Photo",
    "Registry",
    "RegistryError",
    "data_dir",
]
