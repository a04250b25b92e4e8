"""status_patch(): the Ready condition, patched only when something changed."""

from __future__ import annotations

from sluice_operator.render import Verdict
from sluice_operator.status import status_patch

OK = Verdict(True, "Accepted", "serving")
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def test_first_status_carries_condition_generation_and_hash() -> None:
    patch = status_patch(OK, 3, "abc", {}, T0)
    assert patch == {
        "observedGeneration": 3,
        "configHash": "abc",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Accepted",
                "message": "serving",
                "observedGeneration": 3,
                "lastTransitionTime": T0,
            }
        ],
    }


def test_unchanged_status_needs_no_patch() -> None:
    current = status_patch(OK, 3, "abc", {}, T0)
    assert current is not None
    assert status_patch(OK, 3, "abc", current, T1) is None


def test_transition_time_moves_only_when_the_status_flips() -> None:
    current = status_patch(OK, 1, "abc", {}, T0)
    assert current is not None
    regen = status_patch(OK, 2, "abc", current, T1)
    assert regen is not None and regen["conditions"][0]["lastTransitionTime"] == T0
    broken = status_patch(Verdict(False, "ProviderNotFound", "x"), 2, "abc", current, T1)
    assert broken is not None
    assert broken["conditions"][0]["lastTransitionTime"] == T1 and broken["configHash"] is None


def test_other_conditions_are_kept() -> None:
    other = {
        "type": "BudgetAlert",
        "status": "True",
        "reason": "Over",
        "message": "",
        "lastTransitionTime": T0,
    }
    patch = status_patch(OK, 1, "h", {"conditions": [other]}, T1)
    assert patch is not None and patch["conditions"][0] == other
