"""The ops command line: inspect and replay dead letters from a shell.

Reads the same app settings as the Function App (environment), so it works against Azurite
locally or a real storage account::

    python -m local.ops dead-letters [--reason budget_exhausted] [--include-replayed]
    python -m local.ops replay --all [--reason permanent]
    python -m local.ops replay --id <dead-letter id> [--id ...]
    python -m local.ops replay --blobs
    python -m local.ops quarantine [--reason malformed] [--event-id ID] [--full]
    python -m local.ops report [--json] [--refresh]     # the restorability report

Prints JSON; exits 2 on a usage error, 1 when storage failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from shared.errors import KeyguardError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.ops", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("dead-letters", help="list dead-lettered work")
    listing.add_argument("--reason")
    listing.add_argument("--include-replayed", action="store_true")
    rep = commands.add_parser("replay", help="re-enqueue dead letters / ingest blobs")
    rep.add_argument("--all", action="store_true", help="every dead letter not yet replayed")
    rep.add_argument("--id", action="append", default=[], dest="ids", help="a dead-letter id")
    rep.add_argument("--reason", help="only dead letters with this reason")
    rep.add_argument("--blobs", action="store_true", help="ingest Event Grid dead-letter blobs")
    quarantine = commands.add_parser("quarantine", help="list quarantined events")
    quarantine.add_argument("--reason", help="only records with this reason")
    quarantine.add_argument("--event-id", help="only records of this event id")
    quarantine.add_argument("--full", action="store_true", help="whole payloads (else 2,000)")
    report = commands.add_parser("report", help="the restorability report (table or JSON)")
    report.add_argument("--json", action="store_true", help="JSON instead of a table")
    report.add_argument("--refresh", action="store_true", help="re-read Azure first")
    return parser


def _dead_letters(args: argparse.Namespace) -> dict[str, Any]:
    from shared.runtime import get_runtime

    records = get_runtime().dead_letters.list(
        reason=args.reason, include_replayed=args.include_replayed
    )
    return {
        "dead_letters": [
            {
                "id": r.id,
                "reason": r.reason,
                "recorded_at": r.recorded_at,
                "work_key": r.work_key,
                "error_code": r.error_code,
                "error_message": r.error_message,
                "replayed": r.replayed,
            }
            for r in records
        ]
    }


PAYLOAD_PREVIEW = 2000


def _quarantine(args: argparse.Namespace) -> dict[str, Any]:
    """Quarantined events, oldest first, with their payload as it arrived."""
    from shared.runtime import get_runtime

    records = sorted(
        get_runtime().quarantine.list(), key=lambda r: (str(r.get("RecordedAt")), r["RowKey"])
    )
    listed = []
    for r in records:
        if args.reason and r.get("Reason") != args.reason:
            continue
        if args.event_id and r.get("EventId") != args.event_id:
            continue
        payload = r.get("Payload") or ""
        listed.append(
            {
                "id": r["RowKey"],
                "reason": r.get("Reason"),
                "detail": r.get("Detail"),
                "event_id": r.get("EventId") or None,
                "event_type": r.get("EventType") or None,
                "topic": r.get("Topic") or None,
                "subject": r.get("Subject") or None,
                "recorded_at": r.get("RecordedAt"),
                "payload_encoding": r.get("PayloadEncoding", "json"),
                "payload": payload if args.full else payload[:PAYLOAD_PREVIEW],
                "payload_chars": len(payload),
            }
        )
    return {"quarantine": listed}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ops command; the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            from shared.report import build_report
            from shared.runtime import get_runtime

            built = build_report(get_runtime(), refresh=True if args.refresh else None)
            print(built.to_text_json() if args.json else built.to_table())
            return 0
        if args.command == "dead-letters":
            result = _dead_letters(args)
        elif args.command == "quarantine":
            result = _quarantine(args)
        else:
            if args.all and args.ids:
                parser.error("give --all or --id, not both")
            if not (args.all or args.ids or args.blobs):
                parser.error("nothing to do: give --all, --id or --blobs")
            from shared.replay import replay
            from shared.runtime import get_runtime

            selection = "all" if args.all else (args.ids or None)
            result = replay(
                get_runtime(), dead_letters=selection, reason=args.reason, blobs=args.blobs
            ).to_dict()
    except KeyguardError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(result, default=str, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
