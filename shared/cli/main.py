"""The ``keyguard`` command: argument parsing, dispatch and exit codes (see ``shared.cli``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli import AZURE, FINDINGS, OK, USAGE
from shared.errors import ConfigError, KeyguardError, UnknownTargetError

if TYPE_CHECKING:
    from shared.runtime import Runtime

EPILOG = (
    "exit codes: 0 ok; 1 findings (not restorable, actions needed, not migrated); "
    "2 usage or configuration error (also an unknown VM or point); "
    "3 Azure or Keyguard's storage could not be read or written"
)


class Progress:
    """Progress lines on stderr (``--quiet`` silences them): what is being read, and the
    time taken at the end."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet
        self._start = time.monotonic()

    def __call__(self, message: str) -> None:
        if not self._quiet:
            print(f"keyguard: {message}", file=sys.stderr, flush=True)

    def done(self) -> None:
        self(f"done in {time.monotonic() - self._start:.1f}s")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE",
        help="app settings (local.settings.json, JSON object or KEY=VALUE lines) over the "
        "environment",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def parser() -> argparse.ArgumentParser:
    """The ``keyguard`` argument parser (every subcommand has ``--help``)."""
    top = argparse.ArgumentParser(
        prog="keyguard",
        description="Keyguard operator commands: restorability of encrypted VM backups.",
        epilog=EPILOG,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub(name: str, summary: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=summary, description=summary, epilog=EPILOG)
        _common(command)
        return command

    report = sub("report", "the restorability report: every protected VM and recovery point")
    _format(report)
    report.add_argument("--json", action="store_true", help="same as --format json")
    report.add_argument("--refresh", action="store_true", help="re-read the RS vaults first")

    plan = sub("restore-plan", "what to do before restoring one recovery point of a VM")
    plan.add_argument("--vm", required=True, help="the VM's name or ARM id")
    plan.add_argument("--point", help="recovery point name or id (default: newest restorable)")
    plan.add_argument("--storage-account", help="staging storage account for restore-disks")
    plan.add_argument("--target-resource-group", help="resource group for the restored disks")
    plan.add_argument("--refresh", action="store_true", help="re-read the RS vaults first")
    _format(plan)

    ade = sub("ade-report", "ADE retirement planner: migration state and points after 2028-09-15")
    _format(ade)
    ade.add_argument("--refresh", action="store_true", help="re-read the RS vaults first")

    dead = sub("dead-letters", "list dead-lettered work items")
    dead.add_argument("--reason", help="only this reason (budget_exhausted, permanent, ...)")
    dead.add_argument("--include-replayed", action="store_true")

    rep = sub("replay", "re-enqueue dead letters / ingest Event Grid dead-letter blobs")
    rep.add_argument("--all", action="store_true", help="every dead letter not yet replayed")
    rep.add_argument("--id", action="append", default=[], dest="ids", help="a dead-letter id")
    rep.add_argument("--reason", help="only dead letters with this reason")
    rep.add_argument("--blobs", action="store_true", help="ingest Event Grid dead-letter blobs")

    quarantine = sub("quarantine", "list quarantined events and recovery points")
    quarantine.add_argument("--reason", help="only records with this reason")
    quarantine.add_argument("--event-id", help="only records of this event id")
    quarantine.add_argument("--full", action="store_true", help="whole payloads (else 2,000)")

    sweep = sub("sweep", "plan a sweep: the work it would enqueue for the configured scope")
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        required=True,
        help="read and plan, write nothing (KEYGUARD_DRY_RUN semantics): required, the "
        "timer runs the real sweep",
    )
    return top


def _emit(data: Any) -> None:
    print(json.dumps(data, default=str, indent=2))


def _report(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.report import NO_POINTS, RESTORABLE, build_report

    progress("reading the inventory and Key Vault" + (" (refresh first)" if args.refresh else ""))
    built = build_report(rt, refresh=True if args.refresh else None)
    as_json = args.json or args.format == "json"
    print(built.to_text_json() if as_json else built.to_table())
    return OK if all(vm.verdict in (RESTORABLE, NO_POINTS) for vm in built.vms) else FINDINGS


def _restore_plan(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from dataclasses import replace

    from shared.restore_plan import READY, RestoreTarget, build_restore_plan

    target = RestoreTarget()
    if args.storage_account:
        target = replace(target, storage_account=args.storage_account)
    if args.target_resource_group:
        target = replace(target, target_resource_group=args.target_resource_group)
    progress(f"reading the inventory and Key Vault for {args.vm}")
    plan = build_restore_plan(
        rt, args.vm, args.point, target=target, refresh=True if args.refresh else None
    )
    print(plan.to_text_json() if args.format == "json" else plan.to_text())
    return OK if plan.verdict == READY else FINDINGS


def _ade_report(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.ade_report import build_ade_report

    progress("reading the inventory")
    built = build_ade_report(rt, refresh=True if args.refresh else None, progress=progress)
    print(built.to_text_json() if args.format == "json" else built.to_text())
    return FINDINGS if built.findings else OK


def _dead_letters(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.cli.stores import dead_letters

    _emit(dead_letters(rt, reason=args.reason, include_replayed=args.include_replayed))
    return OK


def _quarantine(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.cli.stores import quarantine

    _emit(quarantine(rt, reason=args.reason, event_id=args.event_id, full=args.full))
    return OK


def _replay(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.replay import replay

    selection: Any = "all" if args.all else (args.ids or None)
    progress("replaying")
    _emit(replay(rt, dead_letters=selection, reason=args.reason, blobs=args.blobs).to_dict())
    return OK


def _sweep(rt: Runtime, args: argparse.Namespace, progress: Progress) -> int:
    from shared.sweep import BUILTIN_PLANNERS, EXTRA_PLANNERS, arm_vault_lister, plan_sweep
    from shared.sweep import scope_vaults as list_scope

    progress("listing the scope's vaults")
    vaults, failures = list_scope(rt.settings, arm_vault_lister(rt.azure))
    items = plan_sweep(
        rt.settings, now=rt.now(), vaults=vaults, planners=(*BUILTIN_PLANNERS, *EXTRA_PLANNERS)
    )
    _emit(
        {
            "dry_run": True,
            "vaults": list(vaults),
            "failed_subscriptions": {sub: str(exc) for sub, exc in sorted(failures.items())},
            "would_enqueue": [
                {"key": i.key, "kind": i.kind.value, "target": i.target} for i in items
            ],
        }
    )
    return AZURE if failures else OK


HANDLERS: dict[str, Callable[[Runtime, argparse.Namespace, Progress], int]] = {
    "report": _report,
    "restore-plan": _restore_plan,
    "ade-report": _ade_report,
    "dead-letters": _dead_letters,
    "quarantine": _quarantine,
    "replay": _replay,
    "sweep": _sweep,
}


def main(argv: Sequence[str] | None = None, *, runtime: Runtime | None = None) -> int:
    """Run one command; the process exit code. ``runtime`` replaces the one built from the
    settings (embedding callers)."""
    from azure.core.exceptions import AzureError

    top = parser()
    args = top.parse_args(argv)
    if args.command == "replay":
        if args.all and args.ids:
            top.error("give --all or --id, not both")
        if not (args.all or args.ids or args.blobs):
            top.error("nothing to do: give --all, --id or --blobs")
    progress = Progress(args.quiet)
    try:
        if runtime is None:
            from shared.cli.env import build_runtime

            runtime = build_runtime(args.settings, dry_run=args.command == "sweep")
        code = HANDLERS[args.command](runtime, args, progress)
    except (ConfigError, UnknownTargetError) as exc:
        print(f"keyguard: {exc}", file=sys.stderr)
        return USAGE
    except (KeyguardError, AzureError) as exc:
        print(f"keyguard: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        return AZURE
    progress.done()
    return code
