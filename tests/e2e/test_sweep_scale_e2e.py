"""The sweep benchmark's path in CI, small (issue 12 item 3): counts, never times.

``bench/sweep.py`` at 50 VMs over 2 subscriptions (4 Key Vaults of both permission models,
2 Recovery Services vaults, 10 points per VM): the sweep timer through the local Functions
host's admin endpoint, the work queue drained by the host's worker, twice. The first sweep's
inventory reads stay within 1.1x the minimum the estate needs (every point and VM read), the
second one's too (no point read again) and it writes no inventory row;
nothing is throttled; the work fanned out (one step per VM, not one per vault).
"""

from __future__ import annotations

import io
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

VMS, POINTS = 50, 10


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    from bench import sweep

    shape = sweep.Shape(vms=VMS, subscriptions=2, key_vaults=4, recovery_vaults=2, points=POINTS)
    return sweep.figures(sweep.run(shape, timeout=600, log=io.StringIO()))


def test_the_first_sweep_reads_each_point_once_within_the_minimum(result: dict[str, Any]) -> None:
    first = result["first"]
    reads, minimum = first["inventory_reads"], first["minimum"]
    # each at least once; more only where a step was retried (Azurite under load resets
    # connections now and then), and the total stays within 1.1x the minimum
    assert reads["recoveryservices.recovery_points.get"] >= VMS * POINTS
    assert reads["compute.virtualMachines.get"] >= VMS
    assert reads["recoveryservices.recovery_points.list"] >= VMS
    assert first["reads_vs_minimum"] <= 1.1, (reads, minimum)
    assert first["throttled"] == 0
    # fanned out: one inventory step per Recovery Services vault and one per VM
    assert first["step_count"]["inventory"] >= 2 + VMS


def test_a_second_sweep_over_the_unchanged_estate_reads_no_point_and_writes_nothing(
    result: dict[str, Any],
) -> None:
    second = result["second"]
    assert second["inventory_reads"]["recoveryservices.recovery_points.get"] == 0
    assert second["reads_vs_minimum"] <= 1.1, (second["inventory_reads"], second["minimum"])
    assert result["second_sweep_writes"] == 0
    assert second["throttled"] == 0


def test_each_sweep_names_its_slowest_step_and_its_peak_rss(result: dict[str, Any]) -> None:
    # the longest step's work key says which vault or VM to look at (at 5,000 VMs the second
    # sweep's longest inventory step took 467 s and the figure alone did not say which)
    for label in ("first", "second"):
        sweep = result[label]
        assert set(sweep["slowest"]) == set(sweep["steps"]), sweep["slowest"]
        for kind, key in sweep["slowest"].items():
            assert key.startswith(f"{kind}:"), (kind, key)
    # VmHWM never falls: the second sweep's figure is the peak of both
    assert 0 < result["first"]["peak_rss_mib"] <= result["second"]["peak_rss_mib"]
    assert result["second"]["peak_rss_mib"] <= result["peak_rss_mib"]
