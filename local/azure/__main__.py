"""Run the local Azure from the command line until SIGINT/SIGTERM.

``python -m local.azure --scenario FILE [--port N] [--delivery-speedup X]`` starts the
emulator, prints one JSON line with its endpoints and the app settings (``env``) that point
Keyguard at it, and serves until interrupted — for the demo and for manual exploration.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from local.azure.api import DEFAULT_SPEEDUP, LocalAzure
from local.azure.core import AzureHttpError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start, print the endpoints line, wait for a signal, stop."""
    parser = argparse.ArgumentParser(prog="python -m local.azure", description=__doc__)
    parser.add_argument("--scenario", help="scenario file (YAML or JSON)")
    parser.add_argument("--port", type=int, default=0, help="ARM/admin port (default: free)")
    parser.add_argument(
        "--delivery-speedup",
        type=float,
        default=DEFAULT_SPEEDUP,
        help="divide Event Grid retry delays by this factor",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        azure = LocalAzure.start(
            args.scenario, arm_port=args.port, delivery_speedup=args.delivery_speedup
        )
    except (AzureHttpError, OSError) as exc:  # a bad scenario file, a port in use
        print(f"local azure: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        line = {
            "arm_url": azure.arm_url,
            "admin_url": f"{azure.arm_url}/_admin",
            "ca_path": azure.ca_path,
            "identity_endpoint": azure.identity_endpoint,
            "tenant_id": azure.tenant_id,
            "vaults": azure.server.vault_uris(),
            "env": azure.env(),
        }
        print(json.dumps(line), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        azure.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
