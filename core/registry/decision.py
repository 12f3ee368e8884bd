"""The decision settings HR signs: which model decides, the probability floor, the margin, the threshold,
the smallest face considered.

They live in the registry (setting :data:`DECISION_SETTING`), covered by HR's signature like everything
else that decides who is let in — not in the console's own ``console.toml``, which the guard's account
can edit.  The console and ``facegate monitor`` decide with them; a run-time override needs an HR login
and is audited (``facegate monitor --threshold …``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from core.errors import FaceGateError
from core.recognition.engine import Policy
from core.registry.keys import HRSession
from core.registry.signing import sign_state

if TYPE_CHECKING:
    from core.registry import Registry

DECISION_SETTING = "decision.policy"
POLICY_AUDIT_ACTION = "set_policy"

__all__ = [
    "CAMERAS_SETTING", "DECISION_SETTING", "POLICY_AUDIT_ACTION", "approved_cameras", "decision_record",
    "decision_settings", "set_approved_cameras", "set_decision_settings",
]


def decision_record(policy: Policy, min_face: int) -> dict[str, Any]:
    """The decision settings as stored and audited."""
    return {"decider": policy.decider, "min_probability": policy.min_probability, "min_margin": policy.min_margin,
            "threshold": policy.threshold, "min_face": int(min_face)}


def decision_settings(registry: Registry) -> tuple[Policy, int] | None:
    """The signed decision settings, or ``None`` if HR never set any (each model's own policy applies).

    A damaged value is ignored (``None``) rather than half-used: the state check reports it, as the
    setting is signed.
    """
    value = registry.get_setting(DECISION_SETTING)
    if not isinstance(value, dict):
        return None
    try:
        threshold = value.get("threshold")
        policy = Policy(decider=str(value["decider"]), min_probability=float(value["min_probability"]),
                        min_margin=float(value["min_margin"]),
                        threshold=None if threshold is None else float(threshold))
        min_face = int(value["min_face"])
    except (KeyError, TypeError, ValueError, FaceGateError):
        return None
    if not (20 <= min_face <= 4096) or not math.isfinite(policy.min_probability):
        return None
    return policy, min_face


def set_decision_settings(registry: Registry, session: HRSession, policy: Policy, min_face: int) -> dict[str, Any]:
    """Store new decision settings as ``session``'s account, audited (``set_policy``) and signed.

    Returns the previous record (``{}`` if none).
    """
    before = registry.get_setting(DECISION_SETTING) or {}
    after = decision_record(policy, min_face)
    with registry.transaction():
        registry.set_setting(DECISION_SETTING, after, actor=session.actor)
        registry.audit(session.actor, POLICY_AUDIT_ACTION, "decision", before or None, after)
        sign_state(registry, session, reason="decision settings: " + ", ".join(
            f"{k} {before.get(k)} -> {v}" for k, v in after.items() if before.get(k) != v))
    return dict(before)


# -- the cameras HR approved --------------------------------------------------------------------------------

CAMERAS_SETTING = "security.cameras"
"""The camera specs (``NAME=SPEC``) HR approved; signed like the decision settings, and under ``security.``
so the audit log never shows them (they may hold passwords).  Once a registry has HR accounts, a live
session runs only approved cameras: a guard's account swapping the gate camera for a video of an enrolled
person must not open the gate."""
CAMERAS_AUDIT_ACTION = "approve_cameras"


def approved_cameras(registry: Registry) -> list[str] | None:
    """The approved ``NAME=SPEC`` entries, or ``None`` if HR never approved any."""
    value = registry.get_setting(CAMERAS_SETTING)
    if not isinstance(value, list):
        return None
    return [str(v) for v in value]


def set_approved_cameras(registry: Registry, session: HRSession, cameras: list[str], shown: list[str]) -> None:
    """Replace the approved cameras as ``session``'s account, signed.

    ``shown`` is the same list with passwords masked: what the ``approve_cameras`` audit row records.
    """
    with registry.transaction():
        registry.set_setting(CAMERAS_SETTING, list(cameras), actor=session.actor, secret=True)
        registry.audit(session.actor, CAMERAS_AUDIT_ACTION, "cameras", None, {"cameras": list(shown)})
        sign_state(registry, session, reason=f"approve cameras: {', '.join(shown)}"[:200])
