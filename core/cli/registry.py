"""Registry commands of the ``facegate`` CLI: people, enroll, import, train, models, events, audit,
verify, backup, restore, purge, passphrase.

Reading is open to everybody (a guard); every change (enroll, remove, train, activate, restore …) needs
the HR passphrase, from ``$FACEGATE_HR_PASSPHRASE`` or asked on the terminal. The passphrase is set on
first use. The data directory is ``--data-dir``, else ``$FACEGATE_DATA_DIR``, else the user data dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.cli.common import (
    COUNT,
    DATA_DIR_HELP,
    FloatArg,
    check_output_file,
    format_table,
    models_dir,
    open_registry,
    progress_bar,
    short_list,
)
from core.errors import FaceGateError

RETENTION_SETTING = "retention.days"
DEFAULT_RETENTION_DAYS = 90


# A retention period or a look-back of more than a century is a typo.
MAX_DAYS = 36_500
RETENTION_DAYS = FloatArg(minimum=0, maximum=MAX_DAYS)


def _actor() -> str:
    return f"hr:{os.environ.get('USER') or os.environ.get('USERNAME') or 'cli'}"


def _hr(reg: Any, action: str) -> str:
    """Check the HR passphrase (setting it on first use); return the actor name for the audit."""
    from core.registry.security import authorize_hr, passphrase_from_env_or_prompt

    def new_passphrase() -> str:
        print("No HR passphrase is set yet: this one becomes the HR passphrase.", file=sys.stderr)
        return passphrase_from_env_or_prompt("New HR passphrase: ", confirm=True)

    return authorize_hr(reg, passphrase_from_env_or_prompt, action=action, actor=_actor(),
                        new_passphrase_provider=new_passphrase)


def since(value: str) -> datetime:
    """argparse ``type=`` of ``--since``: an ISO date/time, or a number of days back (``7`` or ``7d``)."""
    text = value.strip().lower().removesuffix("d")
    try:
        days = float(text)
    except ValueError:
        pass
    else:
        if not (math.isfinite(days) and 0 <= days <= MAX_DAYS):
            raise argparse.ArgumentTypeError(f"expected a number of days back from 0 to {MAX_DAYS:,}, "
                                             f"got {value!r}")
        return datetime.now(UTC) - timedelta(days=days)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-11-01, a time like 2026-11-01T08:00, or a "
                                         f"number of days like 7, got {value!r}") from None
    try:
        when = when if when.tzinfo else when.astimezone()
        when.astimezone(UTC)  # the registry compares in UTC: the year 1 or 9999 may not convert
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"the date {value!r} is out of range") from None
    return when


# -- people ------------------------------------------------------------------------------------------


def cmd_people_add(args: argparse.Namespace) -> int:
    """``facegate people add``."""
    with open_registry(args) as reg:
        actor = _hr(reg, "add an operator")
        reg.add_operator(args.id, args.name, args.department or "", actor=actor)
    print(f"Added {args.id} ({args.name}). Enroll photos with: facegate enroll --id {args.id} PHOTO…")
    return 0


def cmd_people_list(args: argparse.Namespace) -> int:
    """``facegate people list``."""
    with open_registry(args) as reg:
        people = reg.list_operators(active_only=not args.all)
    if not people:
        print("Nobody is enrolled.")
        return 0
    rows = [(op.employee_id, op.name, op.department, op.photos, "yes" if op.active else "no") for op in people]
    print("\n".join(format_table(("employee id", "name", "department", "photos", "active"), rows, right=(3,))))
    return 0


def cmd_people_show(args: argparse.Namespace) -> int:
    """``facegate people show``."""
    with open_registry(args) as reg:
        op = reg.get_operator(args.id)
        photos = reg.list_photos(op.id)
        events = [e for e in reg.events(limit=10_000) if e.operator_id == op.id][-10:]
    print(f"{op.employee_id}: {op.name}, {op.department or 'no department'}, "
          f"{'active' if op.active else 'inactive'}, enrolled {op.created:%Y-%m-%d %H:%M}")
    print(f"{len(photos)} photos, {op.embeddings} embeddings")
    for p in photos:
        q = ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in list(p.quality.items())[:5])
        print(f"  photo {p.id}: {p.source}, {p.created:%Y-%m-%d %H:%M}  {q}")
    if events:
        print("Last events:")
        for e in events:
            print(f"  {e.time:%Y-%m-%d %H:%M:%S} {e.camera}: {e.decision}")
    return 0


def cmd_people_remove(args: argparse.Namespace) -> int:
    """``facegate people remove`` (right to erasure)."""
    with open_registry(args) as reg:
        actor = _hr(reg, f"erase {args.id}")
        report = reg.remove_operator(args.id, actor=actor)
    print(f"Erased {report.employee_id}: {report.photos} photos and {report.embeddings} embeddings deleted, "
          f"{report.events_redacted} events redacted. Run 'facegate train' so the model forgets them too.")
    return 0


# -- enrollment and training --------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace) -> int:
    """``facegate enroll``."""
    from core.recognition.engine import FacePipeline
    from core.registry.enrollment import Enroller

    if not any(Path(p).is_file() for p in args.photos):
        raise FaceGateError(f"No photo to enroll: {short_list(args.photos)} — no such file (or not a file). "
                            "Give the paths of photo files.")
    with open_registry(args) as reg:
        actor = _hr(reg, f"enroll {args.id}")
        result = Enroller(reg, FacePipeline()).enroll_photos(
            args.id, args.name or args.id, args.department or "", [Path(p) for p in args.photos], actor=actor,
            confirm_duplicate=args.confirm_duplicate)
    for name, reason in result.rejected:
        print(f"rejected: {reason}" if str(name) in reason else f"rejected: {name}: {reason}")
    print(f"{args.id}: {len(result.accepted)} photos accepted, {len(result.rejected)} rejected. "
          "They are recognised through the gallery now; run 'facegate train' to retrain the classifiers.")
    return 0 if result.accepted else 1


def cmd_import(args: argparse.Namespace) -> int:
    """``facegate import``."""
    from core.recognition.engine import FacePipeline
    from core.registry.enrollment import Enroller

    root = Path(args.dataset)
    if not root.is_dir():
        raise FaceGateError(f"{root}: there is no such folder. Give a folder holding <employee id>/<photos>.")
    with open_registry(args) as reg:
        actor = _hr(reg, f"import {root}")
        results = Enroller(reg, FacePipeline()).import_dataset(root, actor=actor, progress=progress_bar(args),
                                                               confirm_duplicate=args.confirm_duplicate)
    accepted = rejected = 0
    for person, result in results.items():
        accepted += len(result.accepted)
        rejected += len(result.rejected)
        for name, reason in result.rejected:
            print(f"rejected: {person}: {reason}")
    print(f"Imported {len(results)} people: {accepted} photos accepted, {rejected} rejected.")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``facegate train``."""
    from core.recognition.engine import FacePipeline
    from core.registry.training import retrain

    with open_registry(args) as reg:
        actor = _hr(reg, "train a new model")
        version = retrain(reg, FacePipeline(), models_dir(args), actor=actor, progress=progress_bar(args),
                          deep=args.deep)
    state = "active" if version.active else f"NOT activated ({version.status}: {version.notes})"
    print(f"Model version {version.id} trained: {state}.")
    return 0 if version.active else 1


def cmd_models_list(args: argparse.Namespace) -> int:
    """``facegate models list``."""
    with open_registry(args) as reg:
        models = reg.list_models()
    if not models:
        print("No model has been trained yet: run 'facegate train'.")
        return 0
    rows = [("*" if m.active else "", m.id, f"{m.created:%Y-%m-%d %H:%M}", m.status,
             m.metrics.get("people", m.metrics.get("n_classes", "?")), m.notes) for m in models]
    print("\n".join(format_table(("", "version", "created", "status", "people", "notes"), rows, right=(1, 4))))
    return 0


def cmd_models_activate(args: argparse.Namespace) -> int:
    """``facegate models activate``."""
    with open_registry(args) as reg:
        actor = _hr(reg, f"activate model {args.version}")
        reg.activate_model(args.version, actor=actor)
    print(f"Model version {args.version} is active.")
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    """``facegate models rollback``."""
    with open_registry(args) as reg:
        from core.registry.training import rollback

        actor = _hr(reg, "roll back the model")
        version = rollback(reg, actor, models_dir(args))
    print(f"Rolled back: model version {version.id} is active again.")
    return 0


# -- events, audit, integrity -------------------------------------------------------------------------


def cmd_events(args: argparse.Namespace) -> int:
    """``facegate events``."""
    if args.csv:
        check_output_file(Path(args.csv), create_folder=False)
    with open_registry(args) as reg:
        events = reg.events(since=args.since, limit=args.limit)
    rows: list[dict[str, Any]]
    rows = [{"id": e.id, "time": e.time.isoformat(), "camera": e.camera, "decision": e.decision,
             "employee_id": e.employee_id or "", "name": e.name or "",
             "distance": "" if e.distance is None else f"{e.distance:.4f}", "model_version": e.model_version,
             "erased": int(e.erased)} for e in events]
    if args.csv:
        _write_csv(Path(args.csv), rows)
        print(f"Wrote {len(rows)} events to {args.csv}")
        return 0
    if not rows:
        print("No events.")
        return 0
    table = [(r["id"], r["time"][:19], r["camera"], r["decision"],
              r["employee_id"] or ("<erased>" if r["erased"] else "-"), r["distance"]) for r in rows]
    print("\n".join(format_table(("id", "time", "camera", "decision", "employee id", "distance"), table,
                                 right=(0,))))
    return 0


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write through a temp file and a rename: a failed write leaves the previous file whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["id"])
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FaceGateError(f"Cannot write {path}: {exc.strerror or exc}. Choose a file in a folder you may "
                            "write to.") from exc


def cmd_audit(args: argparse.Namespace) -> int:
    """``facegate audit``."""
    with open_registry(args) as reg:
        entries = reg.audit_log(since=args.since, limit=args.limit)
    if not entries:
        print("The audit log is empty.")
        return 0
    rows = [(a.id, f"{a.time:%Y-%m-%d %H:%M:%S}", a.actor, a.action, a.object,
             "" if a.new is None else json.dumps(a.new, default=str)[:80]) for a in entries]
    print("\n".join(format_table(("id", "time", "actor", "action", "object", "new value"), rows, right=(0,))))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``facegate verify``."""
    with open_registry(args) as reg:
        problems = reg.verify()
        heads = reg.chain_heads()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    for chain, (last_id, digest) in heads.items():
        print(f"{chain} chain head: id {last_id}, {digest}")
    print("Registry verified: integrity check passed, event and audit chains intact." if not problems
          else f"{len(problems)} problem(s) found.")
    return 0 if not problems else 1


def cmd_backup(args: argparse.Namespace) -> int:
    """``facegate backup``."""
    check_output_file(Path(args.file), create_folder=True)
    with open_registry(args) as reg:
        path = reg.backup(Path(args.file), overwrite=args.overwrite)
    print(f"Backed up to {path} (integrity check passed).")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``facegate restore``."""
    if not Path(args.file).is_file():
        raise FaceGateError(f"There is no backup file {args.file}. Give a file written by 'facegate backup'.")
    with open_registry(args) as reg:
        _hr(reg, f"restore from {args.file}")
        kept = reg.restore(Path(args.file))
    print(f"Restored from {args.file}. The previous content is kept in {kept}.")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    """``facegate purge``."""
    with open_registry(args) as reg:
        actor = _hr(reg, "purge old events")
        if args.days is not None:
            reg.set_setting(RETENTION_SETTING, args.days, actor=actor)
        days = reg.get_setting(RETENTION_SETTING, DEFAULT_RETENTION_DAYS)
        removed = reg.purge(days, actor=actor)
    print(f"Purged {removed} events (and their snapshots) older than {days} days.")
    return 0


def cmd_passphrase(args: argparse.Namespace) -> int:
    """``facegate passphrase``: set the HR passphrase, or change it."""
    from core.registry.security import has_passphrase, passphrase_from_env_or_prompt, set_passphrase

    with open_registry(args) as reg:
        old = passphrase_from_env_or_prompt("Current HR passphrase: ") if has_passphrase(reg) else None
        new = passphrase_from_env_or_prompt("New HR passphrase: ", confirm=True, env_var="FACEGATE_NEW_HR_PASSPHRASE")
        set_passphrase(reg, new, old, actor=_actor())
    print("HR passphrase set.")
    return 0


def register(sub: Any) -> None:
    """Add the registry commands to the ``facegate`` sub-parser."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--data-dir", help=DATA_DIR_HELP)

    people = sub.add_parser("people", help="enrolled operators").add_subparsers(dest="people_cmd", required=True)
    p = people.add_parser("add", parents=[shared], help="add an operator (HR)")
    p.add_argument("--id", required=True, help="employee id")
    p.add_argument("--name", required=True, help="full name")
    p.add_argument("--department", help="department")
    p.set_defaults(func=cmd_people_add)
    p = people.add_parser("list", parents=[shared], help="list operators")
    p.add_argument("--all", action="store_true", help="include inactive operators")
    p.set_defaults(func=cmd_people_list)
    p = people.add_parser("show", parents=[shared], help="one operator, their photos and last events")
    p.add_argument("id", help="employee id")
    p.set_defaults(func=cmd_people_show)
    p = people.add_parser("remove", parents=[shared], help="erase an operator and their biometric data (HR)")
    p.add_argument("id", help="employee id")
    p.set_defaults(func=cmd_people_remove)

    p = sub.add_parser("enroll", parents=[shared], help="enroll photos of an operator (HR)")
    p.add_argument("--id", required=True, help="employee id")
    p.add_argument("--name", help="full name (needed for a new operator)")
    p.add_argument("--department", help="department")
    p.add_argument("--confirm-duplicate", action="store_true",
                   help="enroll even though the face matches an enrolled person")
    p.add_argument("photos", nargs="+", help="photo files")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("import", parents=[shared], help="enroll a folder-per-person dataset (HR)")
    p.add_argument("dataset", help="folder holding <employee id>/<photos>")
    p.add_argument("--confirm-duplicate", action="store_true", help="do not refuse look-alikes")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", parents=[shared], help="retrain the three models from the registry (HR)")
    p.add_argument("--deep", action="store_true", help="use the Deep Super Learner")
    p.set_defaults(func=cmd_train)

    models = sub.add_parser("models", help="model versions").add_subparsers(dest="models_cmd", required=True)
    models.add_parser("list", parents=[shared], help="list model versions").set_defaults(func=cmd_models_list)
    p = models.add_parser("activate", parents=[shared], help="make a model version live (HR)")
    p.add_argument("version", type=COUNT, help="model version id")
    p.set_defaults(func=cmd_models_activate)
    models.add_parser("rollback", parents=[shared], help="go back to the previous version (HR)").set_defaults(
        func=cmd_models_rollback)

    p = sub.add_parser("events", parents=[shared], help="recognition events")
    p.add_argument("--since", type=since, help="ISO date/time or a number of days back")
    p.add_argument("--limit", type=COUNT, help="at most this many (the newest)")
    p.add_argument("--csv", help="write them to this CSV file (in an existing folder)")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("audit", parents=[shared], help="the audit log")
    p.add_argument("--since", type=since, help="ISO date/time or a number of days back")
    p.add_argument("--limit", type=COUNT, help="at most this many (the newest)")
    p.set_defaults(func=cmd_audit)

    sub.add_parser("verify", parents=[shared], help="check the event and audit chains and the database").set_defaults(
        func=cmd_verify)

    p = sub.add_parser("backup", parents=[shared], help="back up the registry (SQLite backup API)")
    p.add_argument("file", help="backup file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing backup file")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[shared], help="restore the registry from a backup (HR)")
    p.add_argument("file", help="backup file")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("purge", parents=[shared], help="delete events older than the retention period (HR)")
    p.add_argument("--days", type=RETENTION_DAYS,
                   help=f"set the retention period, 0 to {MAX_DAYS:,} days "
                        f"(default {DEFAULT_RETENTION_DAYS} days)")
    p.set_defaults(func=cmd_purge)

    sub.add_parser("passphrase", parents=[shared], help="set or change the HR passphrase").set_defaults(
        func=cmd_passphrase)
