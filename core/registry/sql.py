"""How the registry writes values into its columns and reads them back, and its small SQL helpers.

Times are stored as UTC text in one fixed, sortable format (:func:`_iso`); structured values as
canonical JSON (:func:`_json`: sorted keys, no whitespace, no NaN).  The helpers are internal to
:mod:`core.registry`; they are shared by its modules, not part of its API.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.errors import RegistryError


def _iso(dt: datetime | None = None) -> str:
    """UTC timestamp in one fixed, lexicographically sortable format."""
    if dt is None:
        dt = datetime.now(UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _time(text: str) -> datetime:
    dt = _parse_time(text)
    assert dt is not None
    return dt


def _json(value: Any, what: str) -> str:
    """Canonical JSON (sorted keys, no whitespace, no NaN); a clear error for non-JSON values."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RegistryError(
            f"{what} must be plain JSON data (numbers, text, lists, dicts; no images, arrays or NaN): {exc}."
        ) from exc


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _finite_or_none(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    out = float(value)
    if not math.isfinite(out):
        raise RegistryError(f"{what} must be a finite number or None, not {value!r}.")
    return out


def _where(conditions: Sequence[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``WHERE a AND b`` and its parameters, from ``(sql, value)`` pairs whose value is not None."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    clause = "WHERE " + " AND ".join(sql for sql, _ in kept) if kept else ""
    return clause, [value for _, value in kept]


def _limit(limit: int | None) -> str:
    return "" if limit is None else f"LIMIT {int(limit)}"


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """Run a query; rows can be read by column name."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, tuple(params)).fetchall()


def _fetch_one(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
    """The first row of a query, or ``None``."""
    rows = _fetch_all(conn, sql, params)
    return rows[0] if rows else None
