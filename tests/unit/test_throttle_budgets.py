"""Which budgets the pacer reads from a response's rate-limit headers, and how they combine:
ARM's (documented sizes), the global ones (15x), and resource providers' (guessed, keyed by
resource type), the lowest applicable one deciding."""

from __future__ import annotations

from shared.throttle import budgets_in, resource_type
from tests.fixtures.pacing import FakeClock

SUB = "https://management.azure.com/subscriptions/S1"
RSV = f"{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
JOBS = f"{RSV}/backupJobs/j1?api-version=2023-01-01"
OPS = f"{RSV}/backupOperations/o1?api-version=2023-01-01"
VM = f"{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1?api-version=1"


def test_resource_types() -> None:
    assert resource_type(JOBS) == "microsoft.recoveryservices/vaults/backupjobs"
    assert resource_type(RSV + "?api-version=1") == "microsoft.recoveryservices/vaults"
    assert resource_type(f"{SUB}/resourceGroups/rg?api-version=1") == "arm"
    nested = f"{RSV}/providers/Microsoft.Authorization/roleAssignments/x"
    assert resource_type(nested) == "microsoft.authorization/roleassignments"


def test_every_rate_limit_header_is_a_budget() -> None:
    found = budgets_in(
        "GET",
        VM,
        {
            "x-ms-ratelimit-remaining-subscription-reads": "249",
            "x-ms-ratelimit-remaining-subscription-global-reads": "3749",
            "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/GetVM3Min;197,"
            "Microsoft.Compute/GetVM30Min;1297",
            "x-ms-request-id": "not a budget",
            "x-ms-ratelimit-remaining-subscription-resource-requests": "oops",
        },
    )
    by_name = {b.name: b for b in found}
    assert set(by_name) == {
        "subscription-reads",
        "subscription-global-reads",
        "microsoft.compute/getvm3min",
        "microsoft.compute/getvm30min",
    }
    assert by_name["subscription-reads"].refill_per_second == 25.0
    assert by_name["subscription-global-reads"].refill_per_second == 375.0
    # a named Compute policy covers an operation group across resource types: its provider
    assert by_name["microsoft.compute/getvm3min"].scope == "microsoft.compute"
    assert abs(by_name["microsoft.compute/getvm3min"].refill_per_second - 198 / 180) < 1e-9


def test_recovery_services_budgets_are_per_resource_type_and_provider() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    low = {"x-ms-ratelimit-remaining-subscription-resource-requests": "27"}
    pacer.after("GET", JOBS, {"x-ms-ratelimit-remaining-subscription-resource-requests": "149"})
    pacer.after("GET", JOBS, low)
    pacer.after("GET", OPS, {"x-ms-ratelimit-remaining-subscription-resource-requests": "299"})
    pacer.before("GET", OPS)  # another Recovery Services budget, healthy
    pacer.before("GET", VM)  # another provider
    pacer.before("POST", JOBS)  # writes are another budget
    assert clock.slept == []
    pacer.before("GET", JOBS)  # 27 left of ~150 (low water 30)
    assert clock.slept == [2.0]  # (30 - 27) / (150 / 3600 per s) = 72 s, bounded


def test_the_lowest_budget_wins_and_arm_budgets_apply_to_every_provider() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.after(
        "GET",
        JOBS,
        {
            "x-ms-ratelimit-remaining-subscription-global-reads": "16499",
            "x-ms-ratelimit-remaining-subscription-resource-requests": "140",
        },
    )
    pacer.after("GET", VM, {"x-ms-ratelimit-remaining-subscription-reads": "10"})
    pacer.before("GET", JOBS)  # ARM's reads (10 left) apply to Recovery Services too
    assert clock.slept == [0.4]  # (20 - 10) / 25 per s


def test_a_guessed_budget_refills_over_its_window() -> None:
    clock = FakeClock()
    pacer = clock.pacer()
    pacer.after("GET", JOBS, {"x-ms-ratelimit-remaining-subscription-resource-requests": "27"})
    clock.t += 3600.0  # a full window later the budget is assumed back to its size
    pacer.before("GET", JOBS)
    assert clock.slept == []
