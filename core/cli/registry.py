"""Registry commands of the ``facegate`` CLI: people, enroll, import, train, models, events, audit,
verify, backup, restore, purge.

Reading is open to everybody (a guard); every change (enroll, remove, train, activate, backup, restore …)
needs an HR login — the account from ``$FACEGATE_HR_ACCOUNT`` and its passphrase from
``$FACEGATE_HR_PASSPHRASE``, or asked on the terminal — and ends with HR's signature over the new state.
The accounts themselves are ``facegate accounts`` (:mod:`core.cli.accounts`). The data directory is
``--data-dir``, else ``$FACEGATE_DATA_DIR``, else the user data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.cli.common import (
    COUNT,
    DATA_DIR_HELP,
    FloatArg,
    add_backend_arg,
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


@contextlib.contextmanager
def _hr(reg: Any, action: str, args: argparse.Namespace) -> Iterator[Any]:
    """Log in an HR account for ``action``; sign the registry's state when the block ends.

    Yields the :class:`~core.registry.keys.HRSession`; its ``actor`` goes into the audit rows.
    """
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt, signed

    session = authorize_hr(reg, credentials_from_env_or_prompt, action=action)
    with signed(reg, session, reason=action, models_dir=models_dir(args)):
        yield session


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
    with open_registry(args) as reg, _hr(reg, f"add operator {args.id}", args) as hr:
        reg.add_operator(args.id, args.name, args.department or "", actor=hr.actor)
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
    from core.registry.pruning import prune_erased

    with open_registry(args) as reg, _hr(reg, f"erase {args.id}", args) as hr:
        report = reg.remove_operator(args.id, actor=hr.actor)
        erased = (f"Erased {report.employee_id}: {report.photos} photos, {report.embeddings} embeddings, "
                  f"{report.events_redacted} events redacted")
        try:  # every model version trained with them goes too; the active one after a retrain
            pruned = prune_erased(reg, models_dir(args), actor=hr.actor, progress=progress_bar(args))
        except BaseException:
            print(f"{erased}; their model files were not deleted yet:", file=sys.stderr)
            raise
    print(f"{erased}; {pruned.describe(report.employee_id)}")
    return 1 if pruned.pending or pruned.not_retrained else 0


# -- enrollment and training --------------------------------------------------------------------------


def cmd_enroll(args: argparse.Namespace) -> int:
    """``facegate enroll``."""
    from core.recognition.engine import FacePipeline
    from core.registry.enrollment import Enroller

    if not any(Path(p).is_file() for p in args.photos):
        raise FaceGateError(f"No photo to enroll: {short_list(args.photos)} — no such file (or not a file). "
                            "Give the paths of photo files.")
    with open_registry(args) as reg, _hr(reg, f"enroll {args.id}", args) as hr:
        result = Enroller(reg, FacePipeline()).enroll_photos(
            args.id, args.name or args.id, args.department or "", [Path(p) for p in args.photos],
            actor=hr.actor, confirm_duplicate=args.confirm_duplicate)
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
        with _hr(reg, f"import {root}", args) as hr:
            last_id = max((a.id for a in reg.audit_log(limit=1)), default=0)
            results = Enroller(reg, FacePipeline()).import_dataset(root, actor=hr.actor, progress=progress_bar(args),
                                                                   confirm_duplicate=args.confirm_duplicate,
                                                                   largest_face=args.largest_face)
            # Name the photos enrolled from their largest face, for HR to look at (their audit rows).
            chosen = ([a for a in reg.audit_log(action="largest_face_chosen") if a.id > last_id]
                      if args.largest_face else [])
    accepted = rejected = 0
    for person, result in results.items():
        accepted += len(result.accepted)
        rejected += len(result.rejected)
        for name, reason in result.rejected:
            print(f"rejected: {person}: {reason}")
    for entry in chosen:
        new = entry.new or {}
        print(f"largest face: {entry.object}: {str(new.get('source', '')).removeprefix('file:')}: the largest of "
              f"{new.get('faces')} faces enrolled (audited as largest_face_chosen)")
    print(f"Imported {len(results)} people: {accepted} photos accepted, {rejected} rejected.")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``facegate train``."""
    from core.recognition.engine import FacePipeline
    from core.registry.pruning import prune_erased
    from core.registry.training import retrain

    with open_registry(args) as reg, _hr(reg, "train a new model", args) as hr:
        version = retrain(reg, FacePipeline(), models_dir(args), actor=hr.actor, progress=progress_bar(args),
                          deep=args.deep)
        if version.active:  # a version held back by an erasure (pending) can go now
            prune_erased(reg, models_dir(args), actor=hr.actor)
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
             m.metrics.get("people", m.metrics.get("n_classes", "?")), m.metrics.get("backend", "tf"), m.notes)
            for m in models]
    print("\n".join(format_table(("", "version", "created", "status", "people", "backend", "notes"), rows,
                                  right=(1, 4))))
    return 0


def cmd_models_activate(args: argparse.Namespace) -> int:
    """``facegate models activate``."""
    with open_registry(args) as reg, _hr(reg, f"activate model {args.version}", args) as hr:
        reg.activate_model(args.version, actor=hr.actor)
    print(f"Model version {args.version} is active.")
    return 0


def cmd_models_rollback(args: argparse.Namespace) -> int:
    """``facegate models rollback``."""
    with open_registry(args) as reg:
        from core.registry.training import rollback

        with _hr(reg, "roll back the model", args) as hr:
            version = rollback(reg, hr.actor, models_dir(args))
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
    from core.registry.signing import verify_state

    with open_registry(args) as reg:
        problems = reg.verify()
        heads = reg.chain_heads()
        state = verify_state(reg)
    problems = [*problems, *state.problems]
    for problem in problems:
        print(f"PROBLEM: {problem}")
    for chain, (last_id, digest) in heads.items():
        print(f"{chain} chain head: id {last_id}, {digest}")
    print(f"Security: {state.status()}")
    if state.mode == "unanchored" and not state.problems:
        print("  Unanchored: HR's public key is read from the registry itself, so someone who can write the data "
              "folder could replace the key, the accounts and the signatures together. Install the trust anchor: "
              "'sudo facegate accounts install-anchor'.")
    print("Registry verified: integrity check passed, event and audit chains intact, state as HR signed it."
          if not problems else f"{len(problems)} problem(s) found.")
    return 0 if not problems else 1


def cmd_backup(args: argparse.Namespace) -> int:
    """``facegate backup``."""
    from core.registry.security import authorize_hr, credentials_from_env_or_prompt
    from core.registry.vault import make_encrypted_backup

    check_output_file(Path(args.file), create_folder=True)
    with open_registry(args) as reg:
        session = authorize_hr(reg, credentials_from_env_or_prompt, action=f"back up to {args.file}")
        path = make_encrypted_backup(reg, session, Path(args.file), overwrite=args.overwrite)
    print(f"Backed up to {path}, encrypted with HR's backup key (integrity check passed).")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """``facegate restore``."""
    if not Path(args.file).is_file():
        raise FaceGateError(f"There is no backup file {args.file}. Give a file written by 'facegate backup'.")
    from core.registry.pruning import prune_erased
    from core.registry.vault import is_encrypted_backup, restore_encrypted_backup

    encrypted = is_encrypted_backup(Path(args.file))
    if not encrypted and not args.plain:
        raise FaceGateError(f"{args.file} is not an encrypted FaceGate backup. A plain copy from before backups were "
                            "encrypted can be restored with --plain, after checking where it came from: anyone "
                            "who can write that file could have changed it.")
    with open_registry(args) as reg, _hr(reg, f"restore from {args.file}", args) as hr:
        kept = (restore_encrypted_backup(reg, hr, Path(args.file)) if encrypted
                else reg.restore(Path(args.file), actor=hr.actor))
        restored = reg.audit_log(action="restore", limit=1)[-1].new or {}
        # Erasures made since the backup were applied again; model files that know those people go too.
        pruned = prune_erased(reg, models_dir(args), actor=hr.actor, progress=progress_bar(args))
    print(f"Restored from {args.file}. The previous content is kept in {kept}.")
    again = restored.get("erasures_reapplied", 0)
    if again or pruned.deleted or pruned.retrained or pruned.pending or pruned.not_retrained:
        print(f"{again} erasure{'' if again == 1 else 's'} made since the backup applied again; "
              f"{pruned.describe()}")
    return 1 if pruned.pending or pruned.not_retrained else 0


def cmd_purge(args: argparse.Namespace) -> int:
    """``facegate purge``."""
    with open_registry(args) as reg, _hr(reg, "purge old events", args) as hr:
        if args.days is not None:
            reg.set_setting(RETENTION_SETTING, args.days, actor=hr.actor)
        days = reg.get_setting(RETENTION_SETTING, DEFAULT_RETENTION_DAYS)
        removed = reg.purge(days, actor=hr.actor)
    print(f"Purged {removed} events (and their snapshots) older than {days} days.")
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
    p.add_argument("--confirm-new-look", action="store_true",
                   help="add photos to an existing operator even though they do not look like their enrolled ones")
    p.add_argument("photos", nargs="+", help="photo files")
    add_backend_arg(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("import", parents=[shared], help="enroll a folder-per-person dataset (HR)")
    p.add_argument("dataset", help="folder holding <employee id>/<photos>")
    p.add_argument("--confirm-duplicate", action="store_true", help="do not refuse look-alikes")
    p.add_argument("--largest-face", action="store_true",
                   help="in a photo with bystanders, enroll the largest face if it is clearly the subject "
                        "(at least twice the area of the next); audited")
    add_backend_arg(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", parents=[shared], help="retrain the three models from the registry (HR)")
    p.add_argument("--deep", action="store_true", help="use the Deep Super Learner")
    add_backend_arg(p)
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

    sub.add_parser("verify", parents=[shared],
                   help="check the database, the event and audit chains and HR's signature").set_defaults(
        func=cmd_verify)

    p = sub.add_parser("backup", parents=[shared], help="back up the registry, encrypted (HR)")
    p.add_argument("file", help="backup file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing backup file")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", parents=[shared], help="restore the registry from a backup (HR)")
    p.add_argument("file", help="backup file")
    p.add_argument("--plain", action="store_true",
                   help="accept an unencrypted backup made before backups were encrypted")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("purge", parents=[shared], help="delete events older than the retention period (HR)")
    p.add_argument("--days", type=RETENTION_DAYS,
                   help=f"set the retention period, 0 to {MAX_DAYS:,} days "
                        f"(default {DEFAULT_RETENTION_DAYS} days)")
    p.set_defaults(func=cmd_purge)

