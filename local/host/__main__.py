"""``python -m local.host``: serve a Functions app locally until interrupted.

Examples::

    python -m local.host                       # function_app:app on a free port
    python -m local.host --app tests.apps.sample_app --port 7071
    python -m local.host --print-json          # one JSON line on stdout for machines
    python -m local.host --settings local.settings.json

``--settings`` reads a ``local.settings.json`` (as ``func start`` does) and sets its
``Values`` as app settings, except those already in the environment (the environment wins,
so a test or the demo can override one setting).

The JSON line (``--print-json``) carries ``base_url``, ``port``, ``function_key``, ``pid``
and ``functions`` (with webhook URLs); it is printed once everything is listening. Logs go
to stderr. SIGTERM and Ctrl+C stop the host cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from local.host.config import load_local_settings
from local.host.eventgrid import CLOUDEVENT_MODES
from local.host.runtime import HostRuntime
from shared.logs import JsonFormatter


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.host", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--app", default="function_app", help="module[:attr] (default function_app)"
    )
    parser.add_argument("--port", type=int, default=7071, help="port on 127.0.0.1 (0 = free port)")
    parser.add_argument("--host-json", default=None, help="host.json path (default: the repo's)")
    parser.add_argument("--print-json", action="store_true", help="print one JSON line when ready")
    parser.add_argument("--function-key", default=None, help="fixed function key (default random)")
    parser.add_argument(
        "--cloudevents",
        choices=CLOUDEVENT_MODES,
        default="native",
        help="how CloudEvents reach eventGridTrigger functions",
    )
    parser.add_argument(
        "--no-prepare-storage",
        action="store_true",
        help="do not create Keyguard's queues/tables/containers in AzureWebJobsStorage",
    )
    parser.add_argument("--settings", default=None, help="local.settings.json to read Values from")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def _not_handled_below_root(record: logging.LogRecord) -> bool:
    """True unless a logger between the record's and the root has handlers (no duplicates)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None and logger is not logging.getLogger():
        if logger.handlers:
            return False
        if not logger.propagate:
            break
        logger = logger.parent
    return True


def main(argv: list[str] | None = None) -> int:
    """Start the host, announce it, and block until SIGTERM/SIGINT."""
    args = _arguments(argv)
    if args.settings:
        for name, value in load_local_settings(args.settings).items():
            os.environ.setdefault(name, value)
    level = args.log_level.upper()
    # The host's own lines get their own handler; the app may configure the root logger
    # itself (Keyguard's shared.logs does) and should not see them twice.
    host_log = logging.getLogger("keyguard.localhost")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())  # JSON lines throughout, like Keyguard's own
    host_log.addHandler(handler)
    host_log.setLevel(level)
    host_log.propagate = False
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO
    logging.captureWarnings(True)  # Python warnings as log records (JSON), not bare stderr
    announce = sys.stdout
    sys.stdout = sys.stderr  # the app's prints must not corrupt the announcement line
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime = HostRuntime.start(
        args.app,
        port=args.port,
        host_json=args.host_json,
        function_key=args.function_key,
        cloudevents=args.cloudevents,
        prepare_storage=not args.no_prepare_storage,
    )
    app_handler = logging.StreamHandler(sys.stderr)  # app records nobody else handled
    app_handler.setFormatter(JsonFormatter())
    app_handler.addFilter(_not_handled_below_root)
    logging.getLogger().addHandler(app_handler)
    logging.getLogger().setLevel(level)
    try:
        info = runtime.describe()
        if args.print_json:
            print(json.dumps(info), file=announce, flush=True)
        else:
            print(f"Keyguard local host: {info['base_url']}", file=announce, flush=True)
            print(f"Function key: {info['function_key']}", file=announce, flush=True)
            for fn in info["functions"]:
                where = (
                    fn.get("webhook_url") or fn.get("url") or fn.get("queue") or fn.get("schedule")
                )
                print(f"  {fn['name']} [{fn['trigger']}] {where}", file=announce, flush=True)
        stop.wait()
    finally:
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
