"""How much recorded real traffic the replay and fidelity tests stand on.

Each test module in this folder names the recordings it serves or compares in a module-level
``RECORDINGS`` tuple; this module checks those names exist and counts the interactions they
hold (issue "Real Azure as the oracle": at least 40, across the surfaces Keyguard calls).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tests.replay.recordings import TRAFFIC_DIR, interactions, recording_files

HERE = Path(__file__).resolve().parent
MINIMUM_COVERED = 40


def covered() -> dict[str, list[str]]:
    """Recording file → the test modules that use it."""
    uses: dict[str, list[str]] = {}
    for path in sorted(HERE.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        module = importlib.import_module(f"tests.replay.{path.stem}")
        for name in getattr(module, "RECORDINGS", ()):
            uses.setdefault(name, []).append(path.stem)
    return uses


def test_every_named_recording_exists() -> None:
    missing = sorted(n for n in covered() if not (TRAFFIC_DIR / n).is_file())
    assert not missing, f"RECORDINGS name files that are not in real-traffic/: {missing}"


def test_the_replay_and_fidelity_tests_cover_enough_recorded_interactions() -> None:
    total = sum(len(interactions(name)) for name in covered())
    assert total >= MINIMUM_COVERED, f"only {total} recorded interactions covered"


def test_every_vendored_recording_is_used_by_a_test() -> None:
    unused = sorted({p.name for p in recording_files()} - set(covered()))
    assert not unused, f"recordings no replay or fidelity test uses: {unused}"
