"""The offline demo: Keyguard keeping an encrypted estate restorable through key rollover.

Run with ``./dev demo`` (or ``.venv/bin/python -m local.demo``). It starts Azurite, the local
Azure with ``local/scenarios/demo.yaml`` and the local Functions host running
``function_app.py``, subscribes the host's webhooks to the local Azure's Event Grid topics
(as infra/ does in Azure), switches remediation on, then tells the story in acts:

1. the daily sweep learns the estate: inventory, Backup's access, pins on needed versions;
2. a KEK rotation flows through Event Grid, intake, the work queue and the worker: access
   re-verified, versions pinned, but no backup: ADE was not re-run, so the VMs still use the
   old version (``Keyguard.RotationNotAdopted`` with the command that adopts it); then ADE
   is re-run on one VM: one on-demand backup, triggered and followed to completion;
3. someone removes Azure Backup's access policy: detected, repaired, alerted;
4. someone disables an old KEK version that backups still need (Key Vault emits no event
   for that): the report shows the damage, the next sweep finds and re-enables it;
5. the restorability report, read from the HTTP function behind its function key;
6. a restore plan for one VM (``GET /api/restore-plan``, as ``keyguard restore-plan`` prints
   it): its newest restorable point, what to fix in Key Vault first, the restore-disks command.

Everything printed comes from the running system: the local Azure's delivery log, state and
received alerts, the host's structured logs and Keyguard's own HTTP function. Each act's
claims are checked against that system (``ok:`` / ``FAILED:`` lines); the demo exits 1 when
one does not hold.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from local.stack import DEMO_SCENARIO, Stack

VAULT = "kv-prod-ade"
KEY = "kek-app"
STEP_KINDS = ("verify", "pin", "backup", "track", "inventory", "alert")


def say(text: str = "") -> None:
    """Print one line of the story (flushed, so it interleaves correctly)."""
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, 74 - len(text)))


def _short(value: Any, width: int = 96) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    text = text.replace("/subscriptions/", "/s/").replace("/resourcegroups/", "/rg/")
    return text if len(text) <= width else text[: width - 1] + "…"


def show_pipeline(records: Iterable[dict[str, Any]]) -> None:
    """Summarise what intake and the worker did, then the notable steps one per line."""
    records = list(records)
    done = Counter(
        str(r.get("work_key", "")).split(":", 1)[0]
        for r in records
        if r.get("msg") == "worker.done"
    )
    accepted = sum(1 for r in records if r.get("msg") == "intake.enqueued")
    steps = ", ".join(f"{done[k]} {k}" for k in STEP_KINDS if done[k]) or "none"
    say(f"  pipeline {accepted} event(s) accepted; steps done: {steps}")
    for r in records:
        msg = r.get("msg", "")
        if msg == "access.verified":
            missing = ", ".join(r.get("missing") or []) or "nothing"
            repairs = ", ".join(map(str, r.get("repairs") or [])) or "none"
            say(
                f"  verify   {r.get('permission_model')}: Backup access "
                f"{'OK' if r.get('access_ok') else 'MISSING'} (missing: {missing}; "
                f"repairs: {repairs})"
            )
        elif msg in ("backup.triggered", "backup.completed", "backup.dry_run"):
            vm = str(r.get("vm_id") or r.get("target") or r.get("work_key", "")).rsplit("/", 1)[-1]
            say(f"  backup   {msg.split('.', 1)[1]:<10} {vm} {_short(r.get('status', ''), 40)}")
        elif msg == "alert.raised":
            say(f"  alert    {r.get('alert_type')} ({r.get('severity')})")
        elif msg in ("worker.dead_lettered", "worker.retry"):
            say(f"  worker   {msg:<22} {_short(r.get('work_key', ''))} {r.get('code', '')}")


def backup_policy(stack: Stack) -> list[str]:
    """Azure Backup's key and secret permissions on the demo vault (from local Azure state)."""
    state = stack.azure.admin.state()
    backup_oid = state["principals"]["backup_management"]
    for vault in state["keyvault_mgmt"]["key_vaults"]:
        if vault["name"] != VAULT:
            continue
        for policy in vault["properties"]["accessPolicies"]:
            if policy["objectId"] == backup_oid:
                perms = policy["permissions"]
                return [f"keys/{p}" for p in perms.get("keys", [])] + [
                    f"secrets/{p}" for p in perms.get("secrets", [])
                ]
    return []


def key_versions(stack: Stack) -> list[dict[str, Any]]:
    """The demo KEK's versions (oldest first) with enabled flag and tags."""
    state = stack.azure.admin.state()
    vault = next(v for v in state["keyvault_mgmt"]["key_vaults"] if v["name"] == VAULT)
    return list(vault["keys"][KEY]["versions"])


def show_pins(stack: Stack) -> None:
    for i, version in enumerate(key_versions(stack), 1):
        tags = version.get("tags") or {}
        pinned = tags.get("keyguard-pinned-until")
        state = "enabled " if version.get("enabled") else "DISABLED"
        why = f"pinned until {pinned} ({tags.get('keyguard-pinned-by')})" if pinned else "free"
        say(f"  {KEY} v{i} {version['id'][:8]}  {state}  {why}")


def report_table(stack: Stack) -> str:
    """The restorability report from the HTTP function, as an operator would read it."""
    request = urllib.request.Request(
        f"{stack.host.base_url}/api/report?format=table",
        headers={"x-functions-key": stack.host.function_key},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return str(response.read().decode())


def restore_plan(stack: Stack, vm: str, *, key: bool = True) -> tuple[int, str]:
    """(status, body) of the restore plan from the HTTP function (``key=False``: without
    the function key, as anyone else would call it)."""
    headers = {"x-functions-key": stack.host.function_key} if key else {}
    request = urllib.request.Request(
        f"{stack.host.base_url}/api/restore-plan?vm={vm}&format=text", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return int(response.status), str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""


@dataclass
class ActResult:
    """What one act caused: the host's log records and the alert types the topic received."""

    records: list[dict[str, Any]]
    alerts: list[str]

    def count(self, msg: str) -> int:
        return sum(1 for r in self.records if r.get("msg") == msg)


class Checks:
    """The story's claims, checked against the running system: the demo fails if one is
    not true (a demo that prints a story its system no longer tells is worse than none)."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def expect(self, ok: bool, what: str) -> None:
        say(f"  {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            self.failed.append(what)


def act(stack: Stack, title: str, change: Callable[[], str]) -> ActResult:
    """Make one change, wait until Keyguard is idle, show what happened."""
    heading(title)
    delivered = len(stack.azure.admin.deliveries())
    seen = len(stack.host_records())
    alerts = len(stack.azure.admin.alerts())
    started = time.monotonic()
    say(change())
    stack.wait_idle()
    kinds = Counter(
        d["eventType"].rsplit(".", 1)[-1] for d in stack.azure.admin.deliveries()[delivered:]
    )
    if kinds:
        say("  grid     " + ", ".join(f"{n}× {k}" for k, n in kinds.items()) + " delivered")
    records = stack.host_records()[seen:]
    show_pipeline(records)
    types = []
    for received in stack.azure.admin.alerts()[alerts:]:
        event = received["event"]
        problem = (event.get("data") or {}).get("problem", "")
        say(f"  topic    {event.get('type')}: {_short(problem, 84)}")
        types.append(str(event.get("type")))
    say(f"  (idle after {time.monotonic() - started:.0f}s)")
    return ActResult(records, types)


def _pinned(version: dict[str, Any]) -> bool:
    return bool((version.get("tags") or {}).get("keyguard-pinned-until"))


def act_des_access(stack: Stack, checks: Checks, *, remediation: bool) -> None:
    """Act 7: a disk encryption set's identity loses its key role (CMK, not ADE). With
    remediation on, Keyguard assigns it back (infra/'s assigner condition allows Key Vault
    Crypto Service Encryption User for service principals) and re-verifies; off, it alerts
    DesKeyAccessMissing with the command."""

    def des_roles() -> list[dict[str, Any]]:
        state = stack.azure.admin.state()
        oid = state["principals"]["des_prod"]
        return [
            g
            for g in state["authorization"]["role_assignments"]
            if g["properties"]["principalId"] == oid
        ]

    def strip_des_role() -> str:
        for grant in des_roles():
            stack.azure.admin.delete(f"/keyvault/roleAssignments/{grant['name']}")
        stack.run_timer("sweep")
        return (
            "Removed des-prod's identity's role (Key Vault Crypto Service Encryption User) on "
            "kv-prod-cmk: it can no longer unwrap vm-cmk's disk keys; then the sweep"
        )

    cmk = act(stack, "Act 7 — a DES identity loses its key access (CMK, not ADE)", strip_des_role)
    alerts = stack.azure.admin.alerts()
    after = report_table(stack)
    if remediation:
        roles = des_roles()
        say(f"  vault    des-prod's identity's roles now: {len(roles)} (assigned on the key)")
        checks.expect(
            "Keyguard.DesKeyAccessRepaired" in cmk.alerts
            and "Keyguard.DesKeyAccessMissing" not in cmk.alerts
            and "Keyguard.BackupAccessMissing" not in cmk.alerts
            and len(roles) == 1,
            "the DES identity's key access was repaired and reported (none asked of Backup)",
        )
        verdict = "vm-cmk (des): RESTORABLE"
    else:
        missing = [a for a in alerts if a["event"]["type"] == "Keyguard.DesKeyAccessMissing"]
        if missing:
            say("  fix      " + _short(missing[-1]["event"]["data"].get("remedy", ""), 150))
        checks.expect(
            "Keyguard.DesKeyAccessMissing" in cmk.alerts
            and "Keyguard.BackupAccessMissing" not in cmk.alerts,
            "the DES identity's lost key access was alerted with its fix (none asked of Backup)",
        )
        verdict = "vm-cmk (des): NOT RESTORABLE"
    for line in after.splitlines():
        if "vm-cmk" in line or "CMK via" in line:
            say("  " + line)
    checks.expect(verdict in after, "the report judges vm-cmk by its DES")


def run(scenario: str) -> int:
    heading("Keyguard offline demo")
    say("Starting Azurite, the local Azure (demo estate) and the local Functions host…")
    started = time.monotonic()
    settings = {"KEYGUARD_REMEDIATION": "true"}
    checks = Checks()
    with Stack.start(scenario, settings=settings) as stack:
        functions = ", ".join(f["name"] for f in stack.host.info.get("functions", []))
        say(f"  local Azure    {stack.azure.arm_url}  (HTTPS, CA {stack.azure.ca_path})")
        say(f"  Functions host {stack.host.base_url}  ({functions})")
        say(f"  ready in {time.monotonic() - started:.1f}s; remediation is ON for this demo")

        def sweep() -> str:
            stack.run_timer("sweep")
            return "Ran the sweep timer (daily in production) through the host's admin API."

        act(stack, "Act 1 — the sweep learns the estate", sweep)
        show_pins(stack)
        versions = key_versions(stack)
        checks.expect(
            _pinned(versions[1]) and _pinned(versions[2]), "the KEK versions VMs use are pinned"
        )

        def rotate() -> str:
            result = stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/{KEY}/rotate", {})
            return f"Rotated {VAULT}/{KEY}: new version {result['version'][:8]}"

        rotated = act(stack, "Act 2 — a KEK rotation (ADE not re-run)", rotate)
        show_pins(stack)
        checks.expect(
            "Keyguard.RotationNotAdopted" in rotated.alerts,
            "VMs still on the old KEK version were reported with the command that adopts it",
        )
        checks.expect(rotated.count("backup.triggered") == 0, "no backup under the old keys")
        checks.expect(
            "Keyguard.EncryptedVmUnprotected" in rotated.alerts,
            "the unprotected encrypted VM was reported",
        )

        def rerun_ade() -> str:
            refs = stack.azure.admin.post(
                "/compute/virtualMachines/vm-web/reencrypt", {"resource_group": "rg-app"}
            )
            kek = str(refs.get("key_url") or "").rstrip("/").rsplit("/", 1)[-1]
            return f"Re-ran ADE on vm-web with the new KEK version {kek[:8]}"

        adopted = act(stack, "Act 2b — ADE re-run on vm-web adopts the new KEK", rerun_ade)
        checks.expect(adopted.count("backup.completed") == 1, "vm-web was backed up once")

        def remove_policy() -> str:
            before = backup_policy(stack)
            oid = stack.env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"]
            stack.azure.admin.delete(f"/keyvault/vaults/{VAULT}/accessPolicies/{oid}")
            return f"Removed Azure Backup's access policy on {VAULT} (had: {', '.join(before)})"

        removed = act(stack, "Act 3 — Backup's access removed", remove_policy)
        now = backup_policy(stack)
        say(f"  vault    Backup's permissions now: {', '.join(now) or 'none'}")
        checks.expect(bool(now), "Backup's access was repaired")
        checks.expect("Keyguard.BackupAccessRepaired" in removed.alerts, "the repair was reported")

        heading("Act 4 — an old KEK version disabled (Key Vault emits no event)")
        old = key_versions(stack)[1]["id"]
        stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/{KEY}/{old}/disable", {})
        say(f"Disabled {KEY} v2 {old[:8]}; the report, read at once:")
        damaged = report_table(stack)
        for line in damaged.splitlines():
            if "not restorable" in line or line.startswith(("VM", "vm", "-")):
                say("  " + line)
        checks.expect("NOT RESTORABLE" in damaged, "the report shows the damage at once")
        caught = act(stack, "Act 4b — the next sweep catches it", sweep)
        show_pins(stack)
        checks.expect(bool(key_versions(stack)[1].get("enabled")), "the version was re-enabled")
        checks.expect(
            "Keyguard.PinnedVersionDisabled" in caught.alerts, "the disabled version was reported"
        )

        heading("Act 5 — the restorability report (GET /api/report?format=table)")
        final = report_table(stack)
        for line in final.splitlines():
            say("  " + line)
        checks.expect("NOT RESTORABLE" not in final, "every VM is restorable again")

        heading("Act 6 — a restore plan for vm-web (GET /api/restore-plan?vm=vm-web)")
        status, plan = restore_plan(stack, "vm-web")
        for line in plan.splitlines():
            say("  " + line)
        checks.expect(
            status == 200 and "az backup restore restore-disks" in plan and "READY" in plan,
            "vm-web's newest restorable point has its restore-disks command, nothing to fix first",
        )
        checks.expect(
            restore_plan(stack, "vm-web", key=False)[0] == 401,
            "without the function key the plan is refused",
        )

        act_des_access(stack, checks, remediation=settings["KEYGUARD_REMEDIATION"] == "true")
        heading("Done" if not checks.failed else "FAILED")
        for what in checks.failed:
            say(f"  not true: {what}")
        say(f"Demo finished in {time.monotonic() - started:.0f}s; stopping everything.")
    return 1 if checks.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenario", default=str(DEMO_SCENARIO))
    args = parser.parse_args(argv)
    return run(args.scenario)


if __name__ == "__main__":
    sys.exit(main())
