"""The offline demo: Keyguard reacting to key rollover in a small encrypted estate.

Run with ``./dev demo`` (or ``.venv/bin/python -m local.demo``). It starts Azurite, the local
Azure with ``local/scenarios/demo.yaml`` and the local Functions host running
``function_app.py``, subscribes the host's webhooks to the local Azure's Event Grid topics
(as infra/ does in Azure), then tells the story in acts:

1. a Key Vault key rotation flows through Event Grid, intake, the work queue and the worker;
2. someone removes Azure Backup's access policy: Keyguard detects it, alerts, and — with
   remediation switched on for the demo — repairs it.

Everything printed comes from the running system: the local Azure's delivery log, its
state and received alerts, and the host's structured logs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from local.stack import DEMO_SCENARIO, Stack

VAULT = "kv-prod-ade"
KEY = "kek-app"


def say(text: str = "") -> None:
    """Print one line of the story (flushed, so it interleaves correctly)."""
    print(text, flush=True)


def heading(text: str) -> None:
    say()
    say(f"== {text} " + "=" * max(0, 74 - len(text)))


def new_records(stack: Stack, seen: int) -> tuple[list[dict[str, Any]], int]:
    records = stack.host_records()
    return records[seen:], len(records)


def show_pipeline(records: Iterable[dict[str, Any]]) -> None:
    """Print what intake and the worker did, one line per step."""
    for r in records:
        msg = r.get("msg", "")
        if msg.startswith("intake.") and msg != "intake.received":
            detail = r.get("work_keys") or r.get("reason") or ""
            say(f"  intake   {msg:<22} event {str(r.get('event_id', ''))[:8]}  {_short(detail)}")
        elif msg in {"worker.done", "worker.duplicate", "worker.deferred", "worker.retry"}:
            say(f"  worker   {msg:<22} {_short(r.get('work_key', ''))}")
        elif msg == "worker.dead_lettered":
            say(f"  worker   {msg:<22} {_short(r.get('work_key', ''))} ({r.get('reason')})")
        elif msg == "access.verified":
            missing = ", ".join(r.get("missing") or []) or "nothing"
            say(
                f"  verify   {r.get('permission_model')}: Backup access "
                f"{'OK' if r.get('access_ok') else 'MISSING'} (missing: {missing}); "
                f"repairs: {', '.join(map(str, r.get('repairs') or [])) or 'none'}"
            )
        elif msg == "alert.raised":
            say(f"  alert    {r.get('alert_type')} ({r.get('severity')})")


def _short(value: Any, width: int = 90) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    text = text.replace("/subscriptions/", "/s/").replace("/resourcegroups/", "/rg/")
    return text if len(text) <= width else text[: width - 1] + "…"


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


def act(stack: Stack, title: str, seen: int, change: Callable[[], str]) -> int:
    heading(title)
    delivered = len(stack.azure.admin.deliveries())
    say(change())
    stack.wait_idle()
    for d in stack.azure.admin.deliveries()[delivered:]:
        say(
            f"  grid     {d['eventType']:<45} → {d['subscription']} "
            f"(HTTP {d['status']}, attempt {d['attempt']})"
        )
    records, seen = new_records(stack, seen)
    show_pipeline(records)
    return seen


def run(scenario: str) -> int:
    heading("Keyguard offline demo")
    say("Starting Azurite, the local Azure (demo estate) and the local Functions host…")
    started = time.monotonic()
    with Stack.start(scenario, settings={"KEYGUARD_REMEDIATION": "true"}) as stack:
        say(f"  Azurite        {stack.azurite.connection_string.split(';')[-1]}")
        say(f"  local Azure    {stack.azure.arm_url}  (CA {stack.azure.ca_path})")
        say(
            f"  Functions host {stack.host.base_url}  functions: "
            + ", ".join(f["name"] for f in stack.host.info.get("functions", []))
        )
        say(f"  ready in {time.monotonic() - started:.1f}s; remediation is ON for this demo")
        seen = len(stack.host_records())

        def rotate() -> str:
            result = stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/{KEY}/rotate", {})
            return f"Rotated {VAULT}/{KEY}: new version {result['version']}"

        seen = act(stack, "Act 1 — a KEK rotation", seen, rotate)

        def remove_policy() -> str:
            before = backup_policy(stack)
            oid = stack.env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"]
            stack.azure.admin.delete(f"/keyvault/vaults/{VAULT}/accessPolicies/{oid}")
            return (
                f"Removed Azure Backup's access policy on {VAULT} (had: {', '.join(before)}); "
                f"now: {', '.join(backup_policy(stack)) or 'none'}"
            )

        seen = act(stack, "Act 2 — Backup's access removed", seen, remove_policy)
        say(f"  vault    Backup's permissions now: {', '.join(backup_policy(stack)) or 'none'}")
        alerts = stack.azure.admin.alerts()
        say(f"  topic    {len(alerts)} alert(s) published to the alert topic:")
        for a in alerts:
            event = a["event"]
            data = event.get("data") or {}
            say(f"           {event.get('type')}: {_short(data.get('problem', ''), 110)}")

        heading("Done")
        say(f"Demo finished in {time.monotonic() - started:.1f}s; everything stopped cleanly.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(DEMO_SCENARIO))
    args = parser.parse_args(argv)
    return run(args.scenario)


if __name__ == "__main__":
    sys.exit(main())
