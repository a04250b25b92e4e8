"""PURE: a verdict → the resource's ``status`` (metav1.Condition ``Ready``), or None when unchanged."""

from __future__ import annotations

from typing import Any

from .render import Verdict

READY = "Ready"


def ready_condition(verdict: Verdict, generation: int, previous: list[Any], now: str) -> dict[str, Any]:
    """The Ready condition; lastTransitionTime moves only when the status flips."""
    status = "True" if verdict.ready else "False"
    old = next((c for c in previous if isinstance(c, dict) and c.get("type") == READY), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else now
    )
    return {
        "type": READY,
        "status": status,
        "reason": verdict.reason,
        "message": verdict.message[:32768],
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def status_patch(
    verdict: Verdict, generation: int, config_hash: str | None, current: dict[str, Any], now: str
) -> dict[str, Any] | None:
    """The status to merge into the resource, or None if ``current`` already says it."""
    previous = current.get("conditions") or []
    condition = ready_condition(verdict, generation, previous, now)
    others = [c for c in previous if isinstance(c, dict) and c.get("type") != READY]
    wanted = {
        "observedGeneration": generation,
        "conditions": [*others, condition],
        "configHash": config_hash if verdict.ready else None,
    }
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return wanted
