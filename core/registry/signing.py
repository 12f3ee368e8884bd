"""HR-signed state: everything that decides who is let in, signed with HR's Ed25519 key and checked before use.

What is signed
--------------
A *manifest* (canonical JSON) holding a SHA-256 digest of each of: the operators (who, active or not),
their photos (ids, owners and image hashes), the embeddings (the vectors themselves), the model
versions (which is active, where its files are) and the SHA-256 of each version's files, every
registry setting (the decision policy, retention, the public key, the registry id), the HR and admin
accounts (names, roles, wrapped keys) and the erasure ledger.  It also holds the heads of the event
and audit chains at signing time — a signed checkpoint, so rows older than the newest signature cannot
be deleted unnoticed — and the number of the signature, chained to the previous one.

Each HR action (:mod:`core.registry.security`) ends by appending a new signed manifest to the
append-only ``signatures`` table, in the same transaction as the change when it can.  The console and
``facegate verify`` recompute the digests and check the newest signature with HR's public key: the
trust anchor's (:mod:`.anchor`) when one is installed, else the key stored in the registry
(*unanchored*).  A registry with no accounts and no signatures is *unsigned*: a brand-new or demo
registry, or one from before accounts existed, until HR signs it (``facegate accounts init``).

Only the signed digests are compared; a photo's image bytes are checked against its signed hash where
the image is used (the operator card shown to the guard, training).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from core.errors import PermissionDenied, RegistryError, UntrustedState
from core.registry.anchor import Anchor, find_anchor
from core.registry.chains import _purge_checkpoint, chain_heads
from core.registry.keys import HRSession, fingerprint, public_key_from_text, public_key_text
from core.registry.sql import _iso

if TYPE_CHECKING:
    from core.registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "MANIFEST_FORMAT", "PUBLIC_KEY_SETTING", "REGISTRY_ID_SETTING", "TrustState", "check_model_files",
    "file_digests", "registry_id", "require_trusted", "sign_state", "state_summary", "verify_state",
]

MANIFEST_FORMAT = 1
REGISTRY_ID_SETTING = "registry.id"
PUBLIC_KEY_SETTING = "security.public_key"
MODEL_FILES = ("model.joblib", "model.json")

# The signed sections: name -> the query whose rows are digested, in a fixed order.
_SECTIONS: dict[str, str] = {
    "operators": "SELECT id, employee_id, name, department, active, created FROM operators ORDER BY id",
    "photos": "SELECT id, operator_id, sha256, source, captured_at, quality, created FROM photos ORDER BY id",
    "embeddings": "SELECT id, photo_id, operator_id, vector, dim, embedder, embedder_version FROM embeddings "
                  "ORDER BY id",
    "augmentations": "SELECT id, photo_id, operator_id, variant, vector, dim, embedder, embedder_version "
                     "FROM augmented_embeddings ORDER BY id",
    "model_versions": "SELECT id, created, path, embedder, embedder_version, metrics, active, status, "
                      "activated_at, activation_seq, notes FROM model_versions ORDER BY id",
    "settings": "SELECT key, value FROM settings ORDER BY key",
    "accounts": "SELECT name, role, record, disabled FROM accounts ORDER BY name",
    "erasures": "SELECT id, time, operator_row, models_pruned FROM erasures ORDER BY id",
}
_SECTION_WORDS = {
    "operators": "the operators (who is enrolled, names, active or not)",
    "photos": "the photos on file",
    "embeddings": "the face embeddings (the gallery)",
    "augmentations": "the augmented embeddings the classifiers train on",
    "model_versions": "the model versions (which model is active)",
    "settings": "the settings (decision policy, keys)",
    "accounts": "the HR and admin accounts",
    "erasures": "the erasure ledger",
}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _digest(conn: sqlite3.Connection, sql: str) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    cur = conn.execute(sql)
    while rows := cur.fetchmany(512):
        for row in rows:
            values = [hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else v for v in tuple(row)]
            h.update(_canonical(values).encode("utf-8"))
            h.update(b"\n")
            n += 1
    return h.hexdigest(), n


def _sections(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, int]]:
    digests, counts = {}, {}
    for name, sql in _SECTIONS.items():
        digests[name], counts[name] = _digest(conn, sql)
    return digests, counts


def registry_id(registry: Registry) -> str:
    """The registry's random id (set by the 0003 migration)."""
    value = registry.get_setting(REGISTRY_ID_SETTING)
    if not value:
        raise RegistryError(f"{registry.path} has no registry id; it was not opened by this version of FaceGate.")
    return str(value)


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of each model file in ``folder`` (missing files are left out)."""
    out = {}
    for name in MODEL_FILES:
        path = folder / name
        if path.is_file():
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            out[name] = h.hexdigest()
    return out


@dataclass(frozen=True)
class TrustState:
    """What :func:`verify_state` found.

    Attributes
    ----------
    mode
        ``"anchored"``, ``"unanchored"`` or ``"unsigned"`` (no accounts, nothing signed yet).
    problems
        Sentences; empty when the state verifies.
    manifest
        The newest signed manifest (``{}`` when unsigned).
    anchor
        The installed trust anchor, if any.
    """

    mode: str
    problems: tuple[str, ...] = ()
    manifest: Mapping[str, Any] = field(default_factory=dict)
    anchor: Anchor | None = None
    public_key: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the state may be used."""
        return not self.problems

    @property
    def signed_by(self) -> str | None:
        return self.manifest.get("signer") if self.manifest else None

    @property
    def signed_at(self) -> str | None:
        return self.manifest.get("time") if self.manifest else None

    def status(self) -> str:
        """One line for a status bar or ``verify``."""
        if self.problems:
            return f"REFUSED: {self.problems[0]}" + (f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else "")
        if self.mode == "unsigned":
            return ("UNSIGNED: no HR accounts yet; anyone who can write the data folder can change who is let in "
                    "(HR: run 'facegate accounts init')")
        where = f"anchored at {self.anchor.path}" if self.anchor else "UNANCHORED (no trust anchor installed)"
        return f"signed by {self.signed_by} at {self.signed_at}, {where}"


def _expected_public_key(registry: Registry, anchor: Anchor | None) -> str | None:
    if anchor is not None:
        return anchor.public_key
    stored = registry.get_setting(PUBLIC_KEY_SETTING)
    return str(stored) if stored else None


def _heads_problems(conn: sqlite3.Connection, heads: Mapping[str, Any]) -> list[str]:
    problems = []
    purged = _purge_checkpoint(conn)
    for chain, table in (("events", "events"), ("audit", "audit")):
        head = heads.get(chain)
        if not head or int(head[0]) == 0:
            continue
        head_id, head_hash = int(head[0]), str(head[1])
        row = conn.execute(f"SELECT hash FROM {table} WHERE id = ?", [head_id]).fetchone()
        if row is None:
            if chain == "events" and purged is not None and head_id <= purged[0]:
                continue
            problems.append(f"{chain} row {head_id}, recorded when HR last signed, is missing: rows were "
                            "deleted from the database")
        elif row[0] != head_hash:
            problems.append(f"{chain} row {head_id} differs from the one recorded when HR last signed")
    return problems


def verify_state(registry: Registry) -> TrustState:
    """Check the registry's security state against HR's newest signature.  Never raises for a bad state."""
    conn = registry.db.conn
    problems: list[str] = []
    try:
        anchor = find_anchor()
    except RegistryError as exc:
        return TrustState("anchored", (str(exc),))
    rid = registry_id(registry)
    if anchor is not None and anchor.registry_id != rid:
        problems.append(f"this machine's trust anchor ({anchor.path}) is for another registry "
                        f"({anchor.registry_id}), not this one ({rid})")
    latest = conn.execute("SELECT id, time, signer, manifest, signature FROM signatures "
                          "ORDER BY id DESC LIMIT 1").fetchone()
    n_accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()[0]
    mode = "anchored" if anchor is not None else "unanchored"
    if latest is None:
        if anchor is not None:
            problems.append("a trust anchor is installed but the registry holds no HR signature: its accounts "
                            "and signatures were removed, or this is the wrong data folder")
        elif n_accounts:
            problems.append("the registry has HR accounts but no HR signature: HR must sign its state")
        else:
            return TrustState("unsigned", tuple(problems), anchor=anchor)
        return TrustState(mode, tuple(problems), anchor=anchor)
    public = _expected_public_key(registry, anchor)
    try:
        manifest = json.loads(latest[3])
        if not isinstance(manifest, dict):
            raise TypeError("not an object")
    except (TypeError, ValueError):
        return TrustState(mode, (*problems, "the newest HR signature record is damaged"), anchor=anchor)
    try:
        if public is None:
            raise ValueError("no public key")
        public_key_from_text(public).verify(base64.b64decode(latest[4], validate=True), latest[3].encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError):
        problems.append("the newest HR signature does not verify with HR's public key"
                        + (" (the trust anchor's)" if anchor else "") + ": the state was not signed by HR")
        return TrustState(mode, tuple(problems), {}, anchor, public)
    if manifest.get("registry_id") != rid:
        problems.append("the HR signature is for another registry")
    if manifest.get("seq") != latest[0]:
        problems.append("the HR signatures were renumbered")
    if manifest.get("public_key") != public:
        problems.append("the registry's public key was replaced after HR signed")
    digests, counts = _sections(conn)
    signed = manifest.get("sections", {})
    for name, digest in digests.items():
        if name not in signed and counts[name] == 0:
            continue  # a section added since HR signed (e.g. augmentations), still empty: nothing to check
        if signed.get(name) != digest:
            problems.append(f"{_SECTION_WORDS[name]} changed since HR last signed "
                            f"({manifest.get('signer')}, {manifest.get('time')})")
    problems.extend(_heads_problems(conn, manifest.get("heads", {})))
    return TrustState(mode, tuple(problems), manifest, anchor, public)


def require_trusted(registry: Registry) -> TrustState:
    """:func:`verify_state`, raising :class:`UntrustedState` with the first problems when it fails."""
    state = verify_state(registry)
    if not state.ok:
        raise UntrustedState("The registry's security state does not match what HR signed: "
                             + "; ".join(state.problems[:3]) + ". Ask HR to check it with 'facegate verify'.")
    return state


def check_model_files(state: TrustState, version_id: int, folder: Path) -> None:
    """Refuse model files that differ from the ones HR signed (nothing to check when unsigned).

    Raises
    ------
    UntrustedState
        If the version was not signed, or a file's SHA-256 differs.
    """
    if state.mode == "unsigned":
        return
    signed = state.manifest.get("model_files", {}).get(str(version_id))
    if not signed:
        raise UntrustedState(f"The files of model version {version_id} were never signed by HR; they are not used.")
    if file_digests(folder) != signed:
        raise UntrustedState(f"The files of model version {version_id} in {folder} differ from the ones HR signed; "
                             "they are not used (someone replaced them). Ask HR to roll back or retrain.")


def _model_files(registry: Registry, models_dir: Path, previous: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    carried = previous.get("model_files", {}) if previous else {}
    out: dict[str, dict[str, str]] = {}
    for vid, path in registry.db.conn.execute("SELECT id, path FROM model_versions ORDER BY id"):
        if not path:
            continue
        if str(vid) in carried:  # signed before: keep what HR signed then, never what is on disk now
            out[str(vid)] = dict(carried[str(vid)])
            continue
        folder = models_dir / Path(path).name
        digests = file_digests(folder)
        if digests:
            out[str(vid)] = digests
    return out


def sign_state(registry: Registry, session: HRSession, *, reason: str, models_dir: Path | None = None) -> int:
    """Sign the registry's current security state as ``session``'s account; returns the signature's number.

    Model files of versions signed before keep their signed digests (a file replaced since is not
    laundered into the new signature); new versions' files are hashed now.  Audited as ``sign_state``.

    Raises
    ------
    PermissionDenied
        If the account's key is not HR's key (the trust anchor's or the registry's).
    """
    models_dir = Path(models_dir) if models_dir is not None else registry.path.parent / "models"
    key = session.signing_key()
    public = public_key_text(key)
    anchor = find_anchor()
    expected = _expected_public_key(registry, anchor)
    if expected is not None and expected != public:
        raise PermissionDenied(f"{session.name}'s key is not HR's key for this registry"
                               + (" (the installed trust anchor's)" if anchor else "") + "; nothing was signed.")
    with registry.transaction():
        conn = registry.db.conn
        prev = conn.execute("SELECT id, manifest, signature FROM signatures ORDER BY id DESC LIMIT 1").fetchone()
        previous = verify_state(registry).manifest if prev is not None else {}
        seq = (prev[0] if prev is not None else 0) + 1
        registry._append_audit(session.actor, "sign_state", reason[:200], None, {"seq": seq})
        digests, counts = _sections(conn)
        heads = chain_heads(conn)
        manifest = {
            "format": MANIFEST_FORMAT, "registry_id": registry_id(registry), "seq": seq, "time": _iso(),
            "signer": session.actor, "reason": reason[:200], "public_key": public,
            "prev": hashlib.sha256((prev[1] + prev[2]).encode("utf-8")).hexdigest() if prev is not None else "",
            "sections": digests, "counts": counts,
            "model_files": _model_files(registry, models_dir, previous),
            "heads": {name: [int(h[0]), h[1]] for name, h in heads.items()},
        }
        text = _canonical(manifest)
        signature = base64.b64encode(key.sign(text.encode("utf-8"))).decode("ascii")
        conn.execute("INSERT INTO signatures (id, time, signer, manifest, signature) VALUES (?, ?, ?, ?, ?)",
                     [seq, manifest["time"], session.actor, text, signature])
    log.info("state signed by %s (signature %d, key %s): %s", session.actor, seq, fingerprint(public), reason)
    return seq


def state_summary(registry: Registry) -> list[tuple[str, str]]:
    """What HR reviews before signing: counts and the active model, as (label, value) rows."""
    conn = registry.db.conn
    _, counts = _sections(conn)
    active = conn.execute("SELECT id, created FROM model_versions WHERE active = 1").fetchone()
    inactive = conn.execute("SELECT count(*) FROM operators WHERE active = 0").fetchone()[0]
    rows: Iterable[tuple[str, str]] = (
        ("operators", f"{counts['operators']} ({inactive} deactivated)"),
        ("photos", str(counts["photos"])), ("embeddings", str(counts["embeddings"])),
        ("model versions", str(counts["model_versions"])),
        ("active model", f"version {active[0]} ({active[1][:19]})" if active else "none"),
        ("accounts", str(counts["accounts"])), ("settings", str(counts["settings"])),
    )
    return list(rows)


def audit_refusal(registry: Registry, actor: str, message: str) -> None:
    """Record that ``actor`` (the console, a monitor) refused state that does not verify; never raises."""
    try:
        registry.audit(actor, "state_refused", "registry", None, {"problem": message[:500]})
    except Exception:  # the refusal itself must go ahead even if the audit cannot be written
        log.exception("could not audit the refusal of unverified state")
