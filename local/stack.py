"""The whole offline stack in one handle: Azurite, the local Azure and the local Functions host.

``Stack.start(scenario)`` starts Azurite on free loopback ports, the local Azure with the
scenario, creates Keyguard's queues/tables/containers, starts the local Functions host with
``function_app`` and the app settings that point it at both (configuration only — the same
settings an Azure deployment gets, with other values), and subscribes the host's Event Grid
webhooks to the local Azure's Key Vault and subscription topics, as ``infra/`` does in Azure.

Both subscriptions dead-letter to Keyguard's ``names.EVENTGRID_DEADLETTER_CONTAINER`` in
Azurite, as ``infra/`` configures ``deadLetterDestination`` in Azure, so an event Event Grid
gives up on is a blob that ``keyguard replay --blobs`` ingests.

The demo and the end-to-end tests use it; ``stop()`` (or ``with``) tears everything down.

``./dev stack --scenario FILE`` (``python -m local.stack``) starts the stack with a scenario
of one's own and leaves it running: it prints the endpoints, the function key and the app
settings (the same ones ``keyguard`` needs), then waits for Ctrl-C.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.azure.api import LocalAzure
from local.azurite import Azurite
from local.host import LocalHost
from local.lifecycle import StopsOnExit
from shared import names

if TYPE_CHECKING:
    from shared.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = REPO_ROOT / "local" / "scenarios" / "demo.yaml"

#: Settings that make the pipeline quick enough to watch (retries in seconds, not minutes).
FAST_PIPELINE = {
    "KEYGUARD_RETRY_BASE_SECONDS": "1",
    "KEYGUARD_RETRY_CAP_SECONDS": "10",
    "KEYGUARD_LEASE_SECONDS": "30",
    "KEYGUARD_SWEEP_SCHEDULE": "0 0 3 * * *",
    # the watch's default (every 15 min) would fire mid-test; a test that wants it sets it
    "KEYGUARD_WATCH_SCHEDULE": "0 30 3 * * *",
}


def app_settings(azure: LocalAzure, storage_connection: str) -> dict[str, str]:
    """The app settings for Keyguard against this local Azure and Azurite.

    Scope (subscriptions, every vault in them, the Recovery Services vaults) and the Backup
    principal come from the loaded scenario, as an operator would set them from their estate.
    """
    state = azure.admin.state()
    vaults = state.get("recoveryservices", {}).get("vaults", [])
    recovery_ids = [v["id"] for v in vaults if isinstance(v, dict) and "id" in v]
    # as infra/ does: the custom Backup role (when the scenario defines it) for RBAC repairs
    backup_role = next(
        (
            r["name"]
            for r in state.get("authorization", {}).get("custom_roles", [])
            if str(r.get("properties", {}).get("roleName", "")).startswith(
                "Keyguard Backup Key Vault Reader"
            )
        ),
        "",
    )
    return {
        "KEYGUARD_BACKUP_ROLE_DEFINITION_ID": backup_role,
        **azure.env(),
        **FAST_PIPELINE,
        "AzureWebJobsStorage": storage_connection,
        "KEYGUARD_SUBSCRIPTIONS": ",".join(state["subscriptions"]),
        "KEYGUARD_VAULTS": "*",
        "KEYGUARD_RECOVERY_VAULTS": ",".join(recovery_ids),
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": state["principals"]["backup_management"],
    }


class Stack(StopsOnExit):
    """Azurite + local Azure + local host, wired together. Build with :meth:`start`."""

    def __init__(
        self,
        azurite: Azurite,
        azure: LocalAzure,
        host: LocalHost,
        env: dict[str, str],
        host_json: Path | None = None,
    ) -> None:
        self.azurite = azurite
        self.azure = azure
        self.host = host
        self.env = env
        self.host_json = host_json

    @classmethod
    def start(
        cls,
        scenario: str | Path | dict[str, Any] = DEMO_SCENARIO,
        *,
        settings: Mapping[str, str] | None = None,
        in_process: bool = False,
        host_json: Path | None = None,
        backup_job_seconds: float = 4.0,
    ) -> Stack:
        """Start everything; ``settings`` override app settings (e.g. remediation on);
        ``host_json`` replaces the repository's host.json for the host;
        ``backup_job_seconds`` is how long the local Azure's backup jobs take (short, so a
        demo or test sees on-demand backups complete; the emulator's default is 60 s)."""
        from shared.config import StorageSettings
        from shared.events.catalog import ARM_EVENT_TYPES, ARM_OPERATIONS, KEYVAULT_EVENT_TYPES
        from shared.storage import StorageClients

        azurite = Azurite.start()
        azure: LocalAzure | None = None
        host: LocalHost | None = None
        try:
            azure = LocalAzure.start(scenario)
            azure.admin.post("/backup/settings", {"job_duration_seconds": backup_job_seconds})
            env = {**app_settings(azure, azurite.connection_string), **(settings or {})}
            StorageClients(
                StorageSettings(connection_string=azurite.connection_string)
            ).ensure_resources()
            host = LocalHost.start(
                "function_app", env=env, in_process=in_process, host_json=host_json
            )
            dead_letters = _dead_letter_destination(azurite.connection_string)
            azure.admin.subscribe(
                "keyguard-keyvault",
                host.webhook_url(names.FN_KEYVAULT_EVENTS),
                "keyvault",
                included_event_types=list(KEYVAULT_EVENT_TYPES),
                dead_letter_destination=dead_letters,
            )
            azure.admin.subscribe(
                "keyguard-arm",
                host.webhook_url(names.FN_ARM_EVENTS),
                "subscription",
                included_event_types=list(ARM_EVENT_TYPES),
                # as infra/ subscribes: only the operations Keyguard acts on
                advanced_filters=[
                    {
                        "operatorType": "StringIn",
                        "key": "data.operationName",
                        "values": sorted(ARM_OPERATIONS),
                    }
                ],
                dead_letter_destination=dead_letters,
            )
        except BaseException:
            for part in (host, azure, azurite):
                if part is not None:
                    part.stop()
            raise
        return cls(azurite, azure, host, env, host_json)

    def dead_letter_destination(self) -> dict[str, str]:
        """Where this stack's Event Grid subscriptions dead-letter (Azurite's container)."""
        return _dead_letter_destination(self.azurite.connection_string)

    def restart_host(self, *, kill: bool = False) -> list[dict[str, Any]]:
        """Stop (or SIGKILL) the host and start a new one on the same port, so the Event
        Grid subscriptions keep working; returns the old host's structured log records."""
        old, port = self.host, self.host.port
        if kill:
            old.kill()
        else:
            old.stop()
        records = self.host_records()  # the dead host's whole log, up to its last line
        old.close_log()
        self.host = LocalHost.start(
            "function_app", env=self.env, port=port, host_json=self.host_json
        )
        return records

    def run_timer(self, function_name: str) -> None:
        """Run a timer function now through the host's admin API (as an operator would)."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.host.base_url}/admin/functions/{function_name}",
            data=b"{}",
            headers={"x-functions-key": self.host.function_key},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            if response.status != 202:
                raise RuntimeError(f"{function_name} answered {response.status}")

    def runtime(self) -> Runtime:
        """A Keyguard runtime over the same settings (to read the ledger, dead letters…)."""
        from shared.config import load_settings
        from shared.runtime import Runtime

        return Runtime.from_settings(load_settings(self.env))

    def host_records(self) -> list[dict[str, Any]]:
        """The host's structured (JSON) log records so far."""
        records = []
        for line in self.host.logs().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def wait_idle(self, *, timeout: float = 180.0, settle: float = 1.5) -> None:
        """Wait until Event Grid delivered everything and the work queue stayed empty
        for ``settle`` seconds (delayed retries count: they are in the queue, invisible)."""
        from azure.storage.queue import QueueClient

        self.azure.admin.drain(timeout=timeout)
        queue = QueueClient.from_connection_string(self.azurite.connection_string, names.WORK_QUEUE)
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if queue.get_queue_properties().approximate_message_count == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return
            else:
                quiet_since = None
            time.sleep(0.2)
        raise TimeoutError(f"work queue not idle after {timeout:.0f}s")

    def stop(self) -> None:
        """Stop the host, the local Azure and Azurite (in that order)."""
        try:
            self.host.stop()
            self.host.close_log()
        finally:
            try:
                self.azure.stop()
            finally:
                self.azurite.stop()


def _dead_letter_destination(connection_string: str) -> dict[str, str]:
    """Azurite's dead-letter container (Azurite's published development key, no secret)."""
    return {
        "connection_string": connection_string,
        "container": names.EVENTGRID_DEADLETTER_CONTAINER,
    }


def describe(stack: Stack, scenario: str) -> dict[str, Any]:
    """What someone driving a running stack needs: endpoints, keys, settings."""
    return {
        "scenario": scenario,
        "host": {
            "base_url": stack.host.base_url,
            "function_key": stack.host.function_key,
            "webhooks": {
                name: stack.host.webhook_url(name)
                for name in (names.FN_KEYVAULT_EVENTS, names.FN_ARM_EVENTS)
            },
            "report": f"{stack.host.base_url}/api/report?code={stack.host.function_key}",
        },
        "local_azure": {
            "arm_url": stack.azure.arm_url,
            "ca_bundle": str(stack.azure.ca_path),
            "admin": f"{stack.azure.arm_url}/_admin",
        },
        "azurite": {"connection_string": stack.azurite.connection_string},
        "app_settings": dict(stack.env),
    }


def main(argv: list[str] | None = None) -> int:
    """``./dev stack [--scenario FILE] [--remediation] [--json]``: start, print, wait."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(prog="./dev stack", description=main.__doc__)
    parser.add_argument("--scenario", default=str(DEMO_SCENARIO), help="scenario YAML/JSON")
    parser.add_argument("--remediation", action="store_true", help="KEYGUARD_REMEDIATION=true")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = parser.parse_args(argv)
    scenario = Path(args.scenario)
    if not scenario.is_file():
        parser.error(f"no scenario file {scenario}")
    settings = {"KEYGUARD_REMEDIATION": "true"} if args.remediation else {}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Stack.start(scenario, settings=settings) as stack:
        info = describe(stack, str(scenario))
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            _print_text(info)
        stop.wait()
    return 0


def _print_text(info: dict[str, Any]) -> None:
    host, azure = info["host"], info["local_azure"]
    lines = [
        f"Keyguard offline stack running (scenario {info['scenario']}); Ctrl-C stops it.",
        f"  Functions host   {host['base_url']}   function key {host['function_key']}",
        *(f"  webhook          {name}: {url}" for name, url in host["webhooks"].items()),
        f"  report           {host['report']}",
        f"  local Azure      {azure['arm_url']}   (CA bundle {azure['ca_bundle']})",
        f"  admin API        {azure['admin']}",
        f"  Azurite          {info['azurite']['connection_string']}",
        "  app settings (keyguard --settings FILE reads these lines; or export them):",
        *(f"    {name}={value}" for name, value in sorted(info["app_settings"].items())),
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    import sys

    sys.exit(main())
