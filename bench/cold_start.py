"""Cold-start benchmark: importing ``function_app`` against bare ``import azure.functions``.

Each sample is a fresh interpreter (``python -c "import X"``), timed from outside as wall
time; bytecode is warmed once first (as in a deployed package). The headline is the ratio of
the medians. Target: at most 1.5x (importing every SDK eagerly costs about 10x).

Run from the repo root: ``.venv/bin/python bench/cold_start.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Valid settings so function_app's start-up validation passes; nothing is contacted at import.
ENV = {
    "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "KEYGUARD_SUBSCRIPTIONS": "00000000-0000-0000-0000-000000000001",
    "KEYGUARD_VAULTS": "*",
    "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def _wall(code: str) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env)
    return time.perf_counter() - start


def _rss_kib(code: str) -> int:
    probe = code + "; import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, cwd=ROOT, env=env, capture_output=True, text=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    cases = {
        "interpreter": "pass",
        "azure_functions": "import azure.functions",
        "function_app": "import function_app",
    }
    for code in cases.values():  # warm .pyc and the page cache
        _wall(code)
    medians: dict[str, float] = {}
    for name, code in cases.items():
        samples = [_wall(code) for _ in range(args.runs)]
        medians[name] = statistics.median(samples)
        print(f"{name}: median {medians[name] * 1000:.1f} ms over {args.runs} runs", flush=True)
    # Which Azure SDK modules did importing the app pull in? (should be none)
    check = (
        "import sys, function_app; "
        "print(sorted(m for m in sys.modules if m.startswith('azure.') "
        "and not m.startswith('azure.functions')))"
    )
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    loaded = subprocess.run(
        [sys.executable, "-c", check], check=True, cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout.strip()
    print(f"azure SDK modules loaded by import function_app: {loaded}")
    rss = _rss_kib("import function_app")
    print(f"function_app_import_ms: {medians['function_app'] * 1000:.1f}")
    print(f"azure_functions_import_ms: {medians['azure_functions'] * 1000:.1f}")
    print(f"function_app_peak_rss_mib: {rss / 1024:.1f}")
    print(f"cold_start_ratio: {medians['function_app'] / medians['azure_functions']:.2f}")


if __name__ == "__main__":
    main()
