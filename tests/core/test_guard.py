"""Guard confirm / override in the audit chain, and the filtered, paged event queries of the events view.

Real registry files, no Qt, no models."""

from __future__ import annotations

import csv
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.registry import (
    FLAGGED,
    GUARD_ACTIONS,
    OVERRIDE_REASONS,
    SCHEMA_VERSION,
    EventFilter,
    NewEvent,
    Registry,
    RegistryError,
)
from core.registry.guard import NOTE_MAX_CHARS

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PEOPLE = (("E1001", "Ada Lovelace"), ("E1002", "Grace Hopper"), ("E2001", "Søren Ørsted"))


@pytest.fixture
def reg(tmp_path: Path):
    with Registry.open(tmp_path / "facegate.db") as registry:
        for emp, name in PEOPLE:
            registry.add_operator(emp, name, "Ops", actor="hr")
        yield registry


def new_event(i: int, camera: str = "north", decision: str = "recognised", person: str | None = "E1001",
              flagged: bool = False, thumb: bytes | None = b"\xff\xd8jpeg") -> NewEvent:
    op = person if decision in ("recognised", "gallery-only") else None
    favourite = person or "E1002"
    probs = {"svc": {favourite: 0.9}, "stacker": {favourite: 0.8, "E1002": 0.1}, "super_learner": {"E1002": 0.7}}
    reason = "all models agree" + ("; FLAGGED: the models disagree: svc E1001, super_learner E1002" if flagged else "")
    return NewEvent(camera, decision, op, probs, 0.5 + i % 7 / 10, thumb, "m1", reason, T0 + timedelta(seconds=i))


def mixed(n: int) -> list[NewEvent]:
    """``n`` events over two cameras, all four decision codes, three people, every 11th flagged."""
    codes = ("recognised", "unknown", "gallery-only", "undecided", "recognised")
    return [new_event(i, camera=("north", "south")[i % 2], decision=codes[i % 5],
                      person=PEOPLE[i % 3][0], flagged=i % 11 == 0) for i in range(n)]


def matches(reg: Registry, flt: EventFilter) -> list[int]:
    """The expected ids, newest first, filtered in plain Python over ``Registry.events``."""
    out = []
    for e in reg.events():
        flagged = e.reason is not None and "FLAGGED:" in e.reason
        person = (flt.person.casefold() in (e.employee_id or "").casefold()
                  or flt.person.casefold() in (e.name or "").casefold()) if e.employee_id else False
        if ((flt.camera is None or e.camera == flt.camera)
                and (flt.decision is None or (flagged if flt.decision == FLAGGED else e.decision == flt.decision))
                and (not flt.person or person)
                and (flt.since is None or e.time >= flt.since) and (flt.until is None or e.time < flt.until)):
            out.append(e.id)
    return out[::-1]


def all_pages(reg: Registry, flt: EventFilter, limit: int) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        page = reg.event_page(flt, before_id=before, limit=limit)
        ids += [e.id for e in page]
        if len(page) < limit:
            return ids
        before = page[-1].id


# ------------------------------------------------------------------------------------ guard actions


def test_confirm_and_overrides_are_chained_audit_rows_and_verify_passes(reg: Registry):
    e1, e2, e3 = reg.record_events([new_event(1), new_event(2, decision="unknown"), new_event(3)])
    confirm = reg.record_guard_action(e1, "confirm", reason="", actor="guard:jdoe")
    let_in = reg.record_guard_action(e2, "let-in", reason="badge checked", note="  new contractor  ",
                                     actor="guard:jdoe")
    away = reg.record_guard_action(e3, "turn-away", reason="looks like someone else", actor="guard:kim")
    assert (confirm.action, confirm.reason, confirm.is_override) == ("confirm", "", False)
    assert (let_in.action, let_in.reason, let_in.note, let_in.is_override) == (
        "let-in", "badge checked", "new contractor", True)
    assert away.actor == "guard:kim" and away.time.tzinfo is not None
    assert reg.guard_actions([e1, e2, e3, 999]) == {e1: confirm, e2: let_in, e3: away}
    assert reg.verify() == []

    rows = reg.audit_log(action="guard_let_in")
    assert len(rows) == 1 and rows[0].id == let_in.audit_id and rows[0].object == f"event:{e2}"
    assert rows[0].new["reason"] == "badge checked" and rows[0].new["note"] == "new contractor"
    assert rows[0].new["decision"] == "unknown" and len(rows[0].new["event_hash"]) == 64
    assert rows[0].old is None
    assert {r.action for r in reg.audit_log()} >= {"guard_confirm", "guard_let_in", "guard_turn_away"}


def test_a_second_answer_replaces_the_first_and_both_stay_in_the_log(reg: Registry):
    event = reg.record_event("north", "recognised", "E1001", {}, 0.4, None, "m1")
    first = reg.record_guard_action(event, "confirm", reason="", actor="guard:a")
    second = reg.record_guard_action(event, "turn-away", reason="other", note="badge expired", actor="guard:b")
    assert reg.guard_actions([event]) == {event: second}
    audit = {r.id: r for r in reg.audit_log()}
    assert audit[second.audit_id].old == {"action": "confirm", "audit_id": first.audit_id}
    assert audit[first.audit_id].action == "guard_confirm"
    assert reg.guard_actions_after(first.audit_id - 1) == [first, second]
    assert reg.guard_actions_after(second.audit_id) == []
    assert reg.verify() == []


def test_an_edited_guard_action_is_caught_by_verify(reg: Registry):
    event = reg.record_event("north", "unknown", None, {}, 1.3, None, "m1")
    action = reg.record_guard_action(event, "let-in", reason="badge checked", actor="guard:a")
    conn = sqlite3.connect(reg.path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET action = 'guard_turn_away' WHERE id = ?", [action.audit_id])
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET action = 'guard_turn_away' WHERE id = ?", [action.audit_id])
    conn.close()
    problems = reg.verify()
    assert any(f"Audit row {action.audit_id} was altered" in p for p in problems)


@pytest.mark.parametrize(("event", "action", "reason", "note", "actor", "message"), [
    (999, "confirm", "", "", "guard:a", "There is no event 999"),
    (True, "confirm", "", "", "guard:a", "named by its number"),
    ("1", "confirm", "", "", "guard:a", "named by its number"),
    (1, "approve", "", "", "guard:a", "not something a guard can do"),
    (1, "let-in", "", "", "guard:a", "Say why you let in this person"),
    (1, "turn-away", "   ", "", "guard:a", "Say why you turn away this person"),
    (1, "let-in", "he looked nice", "", "guard:a", "not one of the reasons on the list"),
    (1, "confirm", "", "x" * (NOTE_MAX_CHARS + 1), "guard:a", "The note is too long"),
    (1, "confirm", "", "", "  ", "needs an actor"),
])
def test_refusals_are_sentences_and_record_nothing(reg: Registry, event, action, reason, note, actor, message):
    reg.record_event("north", "recognised", "E1001", {}, 0.4, None, "m1")
    before = len(reg.audit_log())
    with pytest.raises(RegistryError, match=message):
        reg.record_guard_action(event, action, reason=reason, note=note, actor=actor)
    assert len(reg.audit_log()) == before
    assert reg.guard_actions([1]) == {}


def test_the_lists_the_console_offers_are_accepted(reg: Registry):
    ids = reg.record_events([new_event(i) for i in range(len(OVERRIDE_REASONS))])
    for event, reason in zip(ids, OVERRIDE_REASONS):
        for action in GUARD_ACTIONS:
            reg.record_guard_action(event, action, reason=reason, note="n" * NOTE_MAX_CHARS, actor="guard:a")
    assert len(reg.guard_actions(ids)) == len(ids)
    assert reg.verify() == []


def test_an_erased_persons_event_can_still_be_answered_and_keeps_its_answer(reg: Registry):
    event = reg.record_events([new_event(1, person="E1002")])[0]
    action = reg.record_guard_action(event, "confirm", reason="badge checked", actor="guard:a")
    reg.remove_operator("E1002", actor="hr")
    row = reg.event_page()[0]
    assert row.erased and row.employee_id is None and row.scores == () and row.guard == action
    reg.record_guard_action(event, "let-in", reason="other", actor="guard:a")
    assert reg.verify() == []


# ------------------------------------------------------------------------------------------ queries


@pytest.mark.parametrize("flt", [
    EventFilter(),
    EventFilter(camera="south"),
    EventFilter(decision="unknown"),
    EventFilter(camera="north", decision="recognised"),
    EventFilter(decision=FLAGGED),
    EventFilter(decision=FLAGGED, camera="south"),
    EventFilter(person="e100"),
    EventFilter(person="GRACE"),
    EventFilter(person="ørsted"),
    EventFilter(person="nobody at all"),
    EventFilter(camera="west"),
    EventFilter(since=T0 + timedelta(seconds=100), until=T0 + timedelta(seconds=250)),
    EventFilter(since=T0 + timedelta(seconds=900), person="ada", decision="gallery-only"),
])
def test_filters_count_and_page_exactly_the_matching_events(reg: Registry, flt: EventFilter):
    reg.record_events(mixed(1000))
    expected = matches(reg, flt)
    assert reg.count_events(flt) == len(expected)
    assert [e.id for e in reg.event_page(flt, limit=5000)] == expected
    assert all_pages(reg, flt, 37) == expected


def test_rows_carry_what_the_view_shows(reg: Registry):
    ids = reg.record_events([new_event(1, person="E2001", flagged=True), new_event(2, decision="unknown", thumb=None)])
    action = reg.record_guard_action(ids[0], "confirm", reason="", actor="guard:a")
    unknown, named = reg.event_page()
    assert (named.employee_id, named.name, named.camera, named.decision) == ("E2001", "Søren Ørsted", "north",
                                                                            "recognised")
    assert named.flagged and "FLAGGED:" in (named.reason or "") and named.has_thumbnail and named.guard == action
    assert named.score("svc") == ("E2001", 0.9) and named.score("stacker") == ("E2001", 0.8)
    assert named.score("super_learner") == ("E1002", 0.7) and named.score("deep") is None
    assert named.time == T0 + timedelta(seconds=1) and named.distance == pytest.approx(0.6)
    assert unknown.employee_id is None and not unknown.flagged and not unknown.has_thumbnail
    assert unknown.guard is None
    assert reg.event_cameras() == ["north"]


def test_keyset_paging_over_thousands_of_events_never_repeats_or_skips(reg: Registry):
    reg.record_events(mixed(3000))
    everything = all_pages(reg, EventFilter(), 200)
    assert everything == list(range(3000, 0, -1))
    south_unknown = EventFilter(camera="south", decision="unknown")
    pages = all_pages(reg, south_unknown, 200)
    assert pages == matches(reg, south_unknown) and len(pages) == reg.count_events(south_unknown) > 200
    # New events while paging do not shift the pages (unlike OFFSET): the next page is unchanged.
    first = reg.event_page(limit=200)
    expected_next = reg.event_page(before_id=first[-1].id, limit=200)
    reg.record_events(mixed(50))
    assert reg.event_page(before_id=first[-1].id, limit=200) == expected_next
    assert reg.count_events(through_id=3000) == 3000 and reg.count_events() == 3050
    with pytest.raises(RegistryError, match="decision to filter on"):
        EventFilter(decision="Recognised!")
    with pytest.raises(RegistryError, match="must come after its start"):
        EventFilter(since=T0, until=T0)


def test_events_after_gives_what_was_written_since_newest_first(reg: Registry):
    reg.record_events(mixed(500))
    head = reg.latest_event_id()
    assert reg.events_after(EventFilter(), head) == []
    new_ids = reg.record_events(mixed(30))
    assert [e.id for e in reg.events_after(EventFilter(), head)] == new_ids[::-1]
    north = EventFilter(camera="north")
    assert [e.id for e in reg.events_after(north, head)] == [i for i in matches(reg, north) if i > head]
    # In chunks: the ``limit`` events right after ``after_id``.
    chunk = reg.events_after(EventFilter(), head, limit=10)
    assert [e.id for e in chunk] == new_ids[:10][::-1]


def test_export_writes_every_matching_event_through_a_temp_file(reg: Registry, tmp_path: Path):
    reg.record_events(mixed(5500))  # 1,100 from the north camera recognised: more than one page of 1,000
    reg.record_event("=cmd|' /C calc'!A0", "unknown", None, {}, None, None, "m1")
    flt = EventFilter(camera="north", decision="recognised")
    target = tmp_path / "out.csv"
    seen: list[tuple[int, int]] = []
    n = reg.export_events_csv(flt, target, progress=lambda done, total: seen.append((done, total)) or None)
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert n == len(rows) == reg.count_events(flt) == len(matches(reg, flt)) > 1000
    assert [int(r["id"]) for r in rows] == matches(reg, flt)
    assert seen[-1] == (n, n)
    assert {r["camera"] for r in rows} == {"north"} and {r["decision"] for r in rows} == {"recognised"}
    assert {"svc_identity", "svc_probability", "super_learner_probability", "guard_action"} <= set(rows[0])

    reg.export_events_csv(EventFilter(camera="=cmd|' /C calc'!A0"), target)
    assert next(csv.DictReader(target.open(encoding="utf-8")))["camera"].startswith("'=")

    previous = target.read_bytes()
    with pytest.raises(RegistryError, match="cancelled"):
        reg.export_events_csv(EventFilter(), target, progress=lambda done, total: False)
    assert target.read_bytes() == previous and [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    with pytest.raises(RegistryError, match="Cannot write"):
        reg.export_events_csv(EventFilter(), tmp_path / "missing" / "out.csv")


# ------------------------------------------------------------------------------------------ schema


def test_a_registry_from_before_the_event_browsing_migration_upgrades_on_open(tmp_path: Path):
    path = tmp_path / "facegate.db"
    with Registry.open(path) as reg:
        for emp, name in PEOPLE:
            reg.add_operator(emp, name, "Ops", actor="hr")
        reg.record_events(mixed(300))
    # Turn it back into a file written before migrations 0002, 0003 and 0004 existed.
    conn = sqlite3.connect(path, isolation_level=None)
    for index in ("events_scan", "events_flagged", "events_camera"):
        conn.execute(f"DROP INDEX {index}")
    for table in ("accounts", "account_failures", "signatures", "erasures", "augmented_embeddings"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DELETE FROM settings WHERE key = 'registry.id'")
    conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('0002_event_browsing', '0003_security', "
                 "'0004_augmented_embeddings')")
    assert [r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")] == ["0001_initial"]
    conn.close()

    with Registry.open(path) as reg:
        assert reg.schema_version == SCHEMA_VERSION == 4
        assert reg.get_setting("registry.id")  # 0003: the registry's id, and the security tables
        indexes = {r[0] for r in reg.db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"events_scan", "events_flagged", "events_camera"} <= indexes
        assert reg.verify() == []
        assert reg.count_events(EventFilter(decision=FLAGGED)) == len(matches(reg, EventFilter(decision=FLAGGED)))
        reg.record_guard_action(1, "confirm", reason="", actor="guard:a")
        assert reg.verify() == []
